"""The buffering front (nginx) of `make serve` and `make demo`: conf/nginx/reco.stream-template (the public
listener) and conf/nginx/reco.conf.template (the http server behind it), the files compose mounts, wrapped in a
whole nginx.conf whose paths all lie in one folder, so it runs without root and beside anything else on the
machine.

    python -m serving.front --listen 127.0.0.1:8000 --upstream 127.0.0.1:8001 --dir .nginx   # starts nginx
    python -m serving.front --dir .nginx --stop
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1] / "conf" / "nginx" / "reco.conf.template"
STREAM_TEMPLATE = TEMPLATE.with_name("reco.stream-template")
# Debian builds the stream module apart (package libnginx-mod-stream); the official image has it built in.
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")

MAIN = """\
# Written by serving/front.py; the blocks are conf/nginx/reco.stream-template and reco.conf.template.
{load_module}worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
stream {{
{stream}
}}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
{server}
}}
"""


RATE_PER_S = 200  # requests per second per client address (a burst of twice that passes at once)
MAX_CONNECTIONS = 64  # open connections per client address, idle keep-alive ones included
TRUSTED_PROXY = "127.0.0.1"  # whose X-Forwarded-For names the client


def rendered(template: Path, values: dict[str, str]) -> str:
    """A template with its placeholders filled, as the official image's envsubst does (compose sets them)."""
    return re.sub(r"\$\{(RECO_\w+)\}", lambda m: values[m.group(1)], template.read_text())


def template_values(
    listen: str,
    upstream: str,
    http_listen: str,
    rate_per_s: int = RATE_PER_S,
    trusted_proxy: str = TRUSTED_PROXY,
    max_connections: int = MAX_CONNECTIONS,
) -> dict[str, str]:
    return {
        "RECO_LISTEN": listen,
        "RECO_UPSTREAM": upstream,
        "RECO_HTTP_LISTEN": http_listen,
        "RECO_RATE_PER_S": str(rate_per_s),
        "RECO_RATE_BURST": str(2 * rate_per_s),
        "RECO_TRUSTED_PROXY": trusted_proxy,
        "RECO_MAX_CONNECTIONS": str(max_connections),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(
    directory: Path, listen: str, upstream: str, rate_per_s: int = RATE_PER_S, max_connections: int = MAX_CONNECTIONS
) -> Path:
    directory = directory.resolve()
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    values = template_values(listen, upstream, f"127.0.0.1:{free_port()}", rate_per_s, max_connections=max_connections)

    def indented(template: Path) -> str:
        return "\n".join("    " + line if line else line for line in rendered(template, values).splitlines())

    load_module = f"load_module {STREAM_MODULE};\n" if STREAM_MODULE.exists() else ""
    path = directory / "nginx.conf"
    path.write_text(
        MAIN.format(dir=directory, load_module=load_module, stream=indented(STREAM_TEMPLATE), server=indented(TEMPLATE))
    )
    return path


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if not found:
        sys.exit("front: nginx is missing: install it (e.g. sudo apt-get install nginx)")
    return found


def start(
    directory: Path, listen: str, upstream: str, rate_per_s: int = RATE_PER_S, max_connections: int = MAX_CONNECTIONS
) -> int:
    """Starts nginx in the background (its pid in <dir>/nginx.pid); returns the pid."""
    config = write_config(directory, listen, upstream, rate_per_s, max_connections)
    directory = config.parent
    subprocess.run(
        [nginx_binary(), "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(config)], check=True
    )
    pid_file = directory / "nginx.pid"
    for _ in range(50):
        if pid_file.exists() and pid_file.read_text().strip():
            return int(pid_file.read_text())
        time.sleep(0.1)
    raise RuntimeError(f"nginx did not write {pid_file}; see {directory / 'error.log'}")


def stop(directory: Path) -> None:
    pid_file = directory / "nginx.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGQUIT)  # graceful: answers in flight are finished
        except (ProcessLookupError, ValueError):
            pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True, help="folder for nginx.conf, its pid, log and buffers")
    parser.add_argument("--listen", default="127.0.0.1:8000", help="address people connect to")
    parser.add_argument("--upstream", default="127.0.0.1:8001", help="gunicorn's address")
    parser.add_argument("--rate", type=int, default=RATE_PER_S, help="requests per second per client address")
    parser.add_argument("--stop", action="store_true", help="stop the nginx started with this --dir")
    args = parser.parse_args(argv)
    if args.stop:
        stop(args.dir)
    else:
        start(args.dir, args.listen, args.upstream, args.rate)


if __name__ == "__main__":
    main()
