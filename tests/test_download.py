"""The download command against a local HTTP server serving the real (and damaged) MNIST files."""
import gzip
import http.server
import os
import subprocess
import sys
import threading

import pytest

from kit.data import (MNIST_FILES, download, require_mnist, resolve_data_dir,
                     sha256_uncompressed, verify)
from nn.errors import DataError
from kit.mnist import find_mnist_file

SPLIT_KIND = {
    "train-images-idx3-ubyte": ("train", "images"),
    "train-labels-idx1-ubyte": ("train", "labels"),
    "t10k-images-idx3-ubyte": ("test", "images"),
    "t10k-labels-idx1-ubyte": ("test", "labels"),
}


@pytest.fixture(scope="module")
def gz_files(mnist_dir):
    """Canonical name -> gzipped bytes of the real file (re-gzipped if the copy is raw)."""
    files = {}
    for name, (split, kind) in SPLIT_KIND.items():
        blob = find_mnist_file(mnist_dir, split, kind).read_bytes()
        files[name] = blob if blob[:2] == b"\x1f\x8b" else gzip.compress(blob, compresslevel=1)
    return files


def flipped(blob: bytes) -> bytes:
    """Flip a run of bytes in the middle of the deflate stream."""
    damaged = bytearray(blob)
    middle = len(damaged) // 2
    for i in range(middle, min(middle + 64, len(damaged) - 8)):
        damaged[i] ^= 0xFF
    return bytes(damaged)


class Server:
    """An http.server on 127.0.0.1 serving ``routes`` (URL path -> bytes), 404 otherwise."""

    def __init__(self, routes):
        self.routes, self.requests = routes, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                body = outer.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(gz_files):
    """Mirrors under one server: /good/, /corrupt/, /truncated/, /wrongdata/, /lastbad/."""
    routes = {}
    last = list(MNIST_FILES)[-1]
    for name, blob in gz_files.items():
        file = name + ".gz"
        routes[f"/good/{file}"] = blob
        routes[f"/corrupt/{file}"] = flipped(blob)
        routes[f"/truncated/{file}"] = blob[: len(blob) // 2]
        # A perfectly valid gzip whose content is not MNIST: only the checksum can catch it.
        routes[f"/wrongdata/{file}"] = gzip.compress(gzip.decompress(blob)[:-1] + b"\x01",
                                                     compresslevel=1)
        routes[f"/lastbad/{file}"] = flipped(blob) if name == last else blob
    server = Server(routes)
    yield server
    server.close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch, server):
    # A proxy configured in the environment must not intercept requests to the local server.
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    server.requests.clear()


def listing(directory):
    return sorted(p.name for p in directory.iterdir())


def test_download_verifies_then_skips(tmp_path, server):
    results = download(tmp_path, [server.url + "/good/"], progress=False)
    assert [r.name for r in results] == list(MNIST_FILES)
    assert all(r.source == f"{server.url}/good/{r.name}.gz" for r in results)
    assert listing(tmp_path) == sorted(name + ".gz" for name in MNIST_FILES)
    for name, sha in MNIST_FILES.items():
        assert sha256_uncompressed(tmp_path / (name + ".gz")) == sha
    assert len(server.requests) == 4
    assert len(verify(tmp_path)) == 4

    server.requests.clear()
    again = download(tmp_path, [server.url + "/good/"], progress=False)
    assert server.requests == []
    assert all(r.source is None for r in again)
    assert listing(tmp_path) == sorted(name + ".gz" for name in MNIST_FILES)


def test_download_skips_raw_files_under_the_other_spelling(tmp_path, server, gz_files):
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        dotted = name.replace("-idx1", ".idx1")
        (tmp_path / dotted).write_bytes(gzip.decompress(gz_files[name]))
    results = download(tmp_path, [server.url + "/good/"], progress=False)
    assert sorted(server.requests) == sorted(
        f"/good/{name}.gz" for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"))
    assert {r.name: r.path.name for r in results if r.source is None} == {
        "train-labels-idx1-ubyte": "train-labels.idx1-ubyte",
        "t10k-labels-idx1-ubyte": "t10k-labels.idx1-ubyte",
    }


def test_download_replaces_a_corrupt_copy(tmp_path, server, gz_files):
    for name, blob in gz_files.items():
        (tmp_path / (name + ".gz")).write_bytes(blob)
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(flipped(gz_files["train-labels-idx1-ubyte"]))
    download(tmp_path, [server.url + "/good/"], progress=False)
    assert server.requests == ["/good/train-labels-idx1-ubyte.gz"]
    assert bad.read_bytes() == gz_files["train-labels-idx1-ubyte"]
    assert len(verify(tmp_path)) == 4


@pytest.mark.parametrize("mirror,reason", [
    ("/corrupt/", ""),
    ("/truncated/", "not a valid gzip file"),
    ("/wrongdata/", "SHA-256 mismatch"),
    ("/missing/", "HTTP 404"),
])
def test_bad_mirror_leaves_nothing_behind(tmp_path, server, mirror, reason):
    with pytest.raises(DataError) as info:
        download(tmp_path, [server.url + mirror], progress=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and reason in message
    assert "\n" not in message
    assert listing(tmp_path) == []  # no file, no temporary file


def test_failure_keeps_only_verified_files(tmp_path, server):
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        download(tmp_path, [server.url + "/lastbad/"], progress=False)
    assert listing(tmp_path) == sorted(name + ".gz" for name in list(MNIST_FILES)[:3])


def test_mirror_fallback(tmp_path, server, capsys):
    mirrors = ["http://127.0.0.1:1/", server.url + "/missing/", server.url + "/corrupt/",
               server.url + "/good/"]
    results = download(tmp_path, mirrors, progress=True)
    assert all(r.source.startswith(server.url + "/good/") for r in results)
    assert server.requests[:3] == ["/missing/train-images-idx3-ubyte.gz",
                                   "/corrupt/train-images-idx3-ubyte.gz",
                                   "/good/train-images-idx3-ubyte.gz"]
    assert len(verify(tmp_path)) == 4
    assert listing(tmp_path) == sorted(name + ".gz" for name in MNIST_FILES)
    err = capsys.readouterr().err
    assert "cannot reach http://127.0.0.1:1/" in err and "HTTP 404" in err and "bytes" in err


def test_resolve_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("CNN_VS_LSTM_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    # no ./data/mnist here: the per-user data folder
    assert resolve_data_dir(None) == tmp_path / "home" / "mnist"
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    assert str(resolve_data_dir(None)) == "data/mnist"   # ./data/mnist keeps working where it exists
    monkeypatch.setenv("MNIST_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert str(resolve_data_dir("elsewhere")) == "elsewhere"


def test_require_mnist(tmp_path, gz_files):
    with pytest.raises(DataError) as info:
        require_mnist(tmp_path / "absent")
    assert "does not exist" in str(info.value)
    assert f"python -m kit.data download --dir {tmp_path / 'absent'}" in str(info.value)
    (tmp_path / "train-images.idx3-ubyte.gz").write_bytes(gz_files["train-images-idx3-ubyte"])
    with pytest.raises(DataError) as info:
        require_mnist(tmp_path)
    message = str(info.value)
    assert "train-labels-idx1-ubyte" in message and "t10k-images-idx3-ubyte" in message
    assert "train-images" not in message.split(";")[0]
    assert f"python -m kit.data download --dir {tmp_path}" in message


def run_cli(repo_root, *args):
    return subprocess.run([sys.executable, "-m", "kit.data", *args], cwd=repo_root,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, no_proxy="127.0.0.1,localhost"))


def test_cli_download_and_verify(tmp_path, server, repo_root):
    done = run_cli(repo_root, "download", "--dir", str(tmp_path), "--mirror", server.url + "/good/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("SHA-256 verified") == 4
    checked = run_cli(repo_root, "verify", "--dir", str(tmp_path))
    assert checked.returncode == 0, checked.stderr


def test_cli_errors_are_one_line(tmp_path, server, repo_root):
    target = tmp_path / "new"
    failed = run_cli(repo_root, "download", "--dir", str(target), "--mirror",
                     server.url + "/missing/")
    assert failed.returncode != 0
    assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert failed.stderr.startswith("error: ") and "HTTP 404" in failed.stderr
    assert not target.exists()  # not even the folder it would have created

    empty = run_cli(repo_root, "verify", "--dir", str(target))
    assert empty.returncode != 0
    assert len(empty.stderr.strip().splitlines()) == 1 and empty.stderr.startswith("error: ")
    assert "python -m kit.data download --dir" in empty.stderr
