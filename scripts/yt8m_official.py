"""The official YouTube-8M extractor's code, restated once for the scripts that compare
against it (google/youtube-8m, commit e6f6bf6): `frame_iterator` and `quantize` from
feature_extractor/extract_tfrecords_main.py, the `pca_final_feature` ops that
feature_extractor.py's `_load_inception` appends to the graph; and a writer of GraphDefs in the
2015 Inception graph's op set (producer 5), for the stand-ins of that graph.

Imported by scripts/inception_standin.py, extract_reference.py, bench_extract.py and
opencv_frame_iterator.py (run from anywhere: they put scripts/ on the path).
"""
import numpy as np

CAP_PROP_POS_MSEC = 0


def frame_iterator(filename, every_ms=1000, max_num_frames=300, with_pos=False):
    """extract_tfrecords_main.py's loop, as published; `with_pos` also yields
    CAP_PROP_POS_MSEC after each yielded frame (what tests/extract.rs compares)."""
    import cv2

    video_capture = cv2.VideoCapture()
    if not video_capture.open(filename):
        return
    last_ts = -99999  # The timestamp of last retrieved frame.
    num_retrieved = 0
    while num_retrieved < max_num_frames:
        # Skip frames
        while video_capture.get(CAP_PROP_POS_MSEC) < every_ms + last_ts:
            if not video_capture.read()[0]:
                return
        last_ts = video_capture.get(CAP_PROP_POS_MSEC)
        has_frames, frame = video_capture.read()
        if not has_frames:
            break
        yield (frame, video_capture.get(CAP_PROP_POS_MSEC)) if with_pos else frame
        num_retrieved += 1


def quantize(features, min_quantized_value=-2.0, max_quantized_value=2.0):
    """extract_tfrecords_main.py's quantize; the byte values as uint8 (`bytes(...)` of this is
    what it writes)."""
    assert features.dtype == "float32"
    assert len(features.shape) == 1  # 1-D array
    features = np.clip(features, min_quantized_value, max_quantized_value)
    quantize_range = max_quantized_value - min_quantized_value
    features = (features - min_quantized_value) * (255.0 / quantize_range)
    return np.array([int(round(f)) for f in features], dtype=np.uint8)


def add_pca_final_feature(tf, graph, mean, eigenvals, eigenvecs):
    """`_load_pca`'s slicing and `_load_inception`'s ops on the imported graph (float32
    constants), named `pca_final_feature`; the width is mean.npy's (2048 when published)."""
    width = mean.shape[0]
    pca_mean = mean[:, 0]
    pca_eigenvals = eigenvals[:1024, 0]
    pca_eigenvecs = eigenvecs.T[:, :1024]
    feats = graph.get_tensor_by_name("pool_3/_reshape:0")[0] - tf.constant(pca_mean, dtype=tf.float32)
    feats = tf.reshape(tf.matmul(tf.reshape(feats, [1, width]), tf.constant(pca_eigenvecs, dtype=tf.float32)),
                       [1024])
    return tf.divide(feats, tf.sqrt(tf.constant(pca_eigenvals, dtype=tf.float32) + 1e-4),
                     name="pca_final_feature")


def official_session(tf, model_dir):
    """feature_extractor.py's set-up: the graph file imported, a session, the PCA ops added
    (files from `model_dir`, as the official code reads them)."""
    import os

    tf1 = tf.compat.v1
    with open(os.path.join(model_dir, "classify_image_graph_def.pb"), "rb") as f:
        graph_def = tf1.GraphDef.FromString(f.read())
    graph = tf.Graph()
    with graph.as_default():
        tf1.import_graph_def(graph_def, name="")
        sess = tf1.Session()
        add_pca_final_feature(tf, graph, *(np.load(os.path.join(model_dir, f)) for f in
                                           ("mean.npy", "eigenvals.npy", "eigenvecs.npy")))
    return sess


class GraphDefWriter:
    """Nodes of a GraphDef with the 2015 graph's producer version and op set."""

    def __init__(self, tf):
        self.tf, self.tf1 = tf, tf.compat.v1
        self.g = self.tf1.GraphDef()
        self.g.versions.producer = 5
        self.g.versions.min_consumer = 0

    def node(self, name, op, inputs=(), **attrs):
        n = self.g.node.add()
        n.name, n.op = name, op
        n.input.extend(inputs)
        for k, v in attrs.items():
            n.attr[k].CopyFrom(v)
        return name

    def a_type(self, t):
        return self.tf1.AttrValue(type=t.as_datatype_enum)

    def a_ints(self, v):
        return self.tf1.AttrValue(list=self.tf1.AttrValue.ListValue(i=v))

    def a_str(self, s):
        return self.tf1.AttrValue(s=s.encode())

    def const(self, name, value, dtype=None):
        dtype = dtype or self.tf.float32
        value = np.asarray(value, dtype=dtype.as_numpy_dtype)
        return self.node(name, "Const", dtype=self.a_type(dtype),
                         value=self.tf1.AttrValue(tensor=self.tf.make_tensor_proto(value)))

    def pool(self, name, op, x, k, stride, padding):
        return self.node(name, op, [x], T=self.a_type(self.tf.float32), ksize=self.a_ints([1, k, k, 1]),
                         strides=self.a_ints([1, stride, stride, 1]), padding=self.a_str(padding))

    def concat(self, name, parts):
        self.const(f"{name}/concat_dim", 3, self.tf.int32)
        return self.node(name, "Concat", [f"{name}/concat_dim"] + parts, T=self.a_type(self.tf.float32),
                         N=self.tf1.AttrValue(i=len(parts)))
