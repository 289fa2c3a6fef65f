"""Shared fixtures: an isolated cache per test session and a loopback HTTP file server."""
from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_env(tmp_path_factory):
    """No test reads the user's caches or the network; results go to a temporary folder.
    Session-scoped so that module-scoped fixtures see it too (decoded weights are made once)."""
    base = tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PERCEPTUAL_CACHE", str(base / "cache"))
        mp.setenv("PERCEPTUAL_RESULTS", str(base / "results"))
        mp.setenv("TORCH_HOME", str(base / "torch-home"))
        for var in ("PERCEPTUAL_DATA_ROOT", "PERCEPTUAL_PROFILE", "PERCEPTUAL_VGG16_URL",
                    "PERCEPTUAL_VGG16_CAFFE_URL", "PERCEPTUAL_VGG19_URL", "LOSS_NETWORK"):
            mp.delenv(var, raising=False)
        from perceptual.method import vgg

        vgg._convs.cache_clear()
        yield


class FileServer:
    """Serves files from a folder on 127.0.0.1 with HTTP Range support.

    ``truncate[name] = n`` makes the next request for ``name`` send the full Content-Length
    header but only ``n`` bytes, then drop the connection (an interrupted transfer).
    """

    def __init__(self, root: Path):
        self.root, self.truncate, self.requests = root, {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):  # noqa: N802 (http.server naming)
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                path = server.root / name
                if not path.is_file():
                    self.send_error(404, "not found")
                    return
                data = path.read_bytes()
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.truncate.pop(name, None)
                self.wfile.write(body if cut is None else body[:cut])
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

            def do_HEAD(self):  # noqa: N802
                path = server.root / self.path.lstrip("/")
                self.send_response(200 if path.is_file() else 404)
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    server = FileServer(root)
    yield server
    server.close()


@pytest.fixture(scope="session")
def style_model(tmp_path_factory) -> Path:
    """A width-8 style network's ``model.pt`` (seed 0), as ``perceptual stylize`` reads it."""
    import torch

    from perceptual.core import store
    from perceptual.method.transformer import StyleNet

    torch.manual_seed(0)
    net = StyleNet(width=8)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    store.atomic_torch_save({"model": net.state_dict(), "meta": {"kind": "style", "arch": net.arch, "style": "t"}},
                            path)
    return path
