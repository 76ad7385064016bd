"""zfnet explore from the command line: it prints its address, binds 127.0.0.1 unless told, warns
for any other host, exports a site, and reports mistakes in one line with exit status 2."""
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from zfnet.cli import main


def start(args):
    """Run `zfnet explore ARGS --port 0`; return (process, its URL) once it says where it serves."""
    p = subprocess.Popen([sys.executable, "-c", "import sys; from zfnet.cli import main; sys.exit(main())",
                          "explore", *args, "--port", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    line = p.stdout.readline()
    assert "serving squeezenet1_0 at http://" in line, (line, p.stderr.read() if p.poll() is not None else "")
    return p, line.split(" at ")[1].split()[0].rstrip("/")


def stop(p):
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    return p.stderr.read()


def test_serves_on_localhost_by_default(scan_dir):
    p, url = start(["--scan", str(scan_dir)])
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/api/model", timeout=60) as r:
            assert json.load(r)["scans"][0]["layer"] == "fire9/concat"
    finally:
        err = stop(p)
    assert "warning" not in err


def test_another_host_prints_a_warning():
    p, url = start(["--host", "127.0.0.2"])        # still loopback, but not the default: warned
    try:
        assert url.startswith("http://127.0.0.2:")
    finally:
        err = stop(p)
    assert "warning: listening on 127.0.0.2: anyone who can reach this machine" in err


def test_port_in_use_is_one_line(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["explore", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zfnet: error: cannot listen on 127.0.0.1:") and err.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--export", "site"], "--export writes what a scan found: give --scan DIR"),
    (["--scan", "/nonexistent/scan"], "no index.json"),
    (["--scan", "SCAN", "--export", "site", "--modes", "magic"], "unknown mode 'magic'"),
    (["--images", "/nonexistent/photos"], "not a folder"),
    (["--occlusion", "48"], "give SIZE,STRIDE"),
    (["--scan", "SCAN", "--export", "/dev/null/site", "--modes", "deconvnet"], "cannot write the site into /dev/null/site"),
])
def test_mistakes_are_one_line(args, message, capsys, scan_dir, tmp_path):
    args = [str(scan_dir) if a == "SCAN" else str(tmp_path / a) if a == "site" else a for a in args]
    assert main(["explore", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zfnet: error:") and message in err and err.count("\n") == 1


def test_export_from_the_command_line(scan_dir, tmp_path, capsys):
    assert main(["explore", "--scan", str(scan_dir), "--export", str(tmp_path / "site"), "--modes", "deconvnet"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "site" / "index.html")
    assert (tmp_path / "site" / "data.js").is_file() and len(list((tmp_path / "site" / "img").rglob("*.png"))) > 6
