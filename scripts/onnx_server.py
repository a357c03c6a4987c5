#!/usr/bin/env python3
"""The do-it-yourself alternative to `yt8m serve`, for `yt8m bench serve --onnx-python PY`: a
bundle's model.onnx in onnxruntime behind Python's ThreadingHTTPServer, answering the same
Open Inference Protocol binary requests (rgb / audio UINT8 + lengths INT64 in, probabilities
FP32 out), one request per model call (no batching across requests).

  python scripts/onnx_server.py BUNDLE/model.onnx --port 0   # prints "listening on 127.0.0.1:PORT"
"""
import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx")
    ap.add_argument("--port", type=int, default=8010)
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    a = ap.parse_args()
    so = ort.SessionOptions()
    if a.threads:
        so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            n = int(self.headers.get("Inference-Header-Content-Length", len(body)))
            req = json.loads(body[:n])
            feeds, at = {}, n
            for i in req["inputs"]:
                size = i["parameters"]["binary_data_size"]
                dt = {"UINT8": np.uint8, "INT64": np.int64, "FP32": np.float32}[i["datatype"]]
                feeds[i["name"]] = np.frombuffer(body[at:at + size], dtype=dt).reshape(i["shape"])
                at += size
            probs = sess.run(["probabilities"], feeds)[0].astype(np.float32)
            raw = probs.tobytes()
            head = json.dumps({"model_name": "m", "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": list(probs.shape), "parameters": {"binary_data_size": len(raw)}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Inference-Header-Content-Length", str(len(head)))
            self.send_header("Content-Length", str(len(head) + len(raw)))
            self.end_headers()
            self.wfile.write(head + raw)

    # socketserver's listen backlog is 5: 64 clients connecting at once would see refused or
    # reset connections that are the backlog's fault, not the model's.
    ThreadingHTTPServer.request_queue_size = 128
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    print(f"listening on 127.0.0.1:{srv.server_address[1]}", file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
