"""Entry point: gevent's monkey patching must come before anything else is imported.

Both ``python -m exporter`` and the ``cryptomus-exporter`` console script start here.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from exporter import cli  # noqa: E402


def main() -> int:
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
