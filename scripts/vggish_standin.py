#!/usr/bin/env python3
"""Writes a stand-in for AudioSet's VGGish files (vggish_model.ckpt, vggish_pca_params.npz) and
what the official code computes with them, for tests/extract.rs.

The published checkpoint (288 MB) can't be downloaded here or in CI, so the stand-in has
VGGish's structure and variable names exactly as tensorflow/models
research/audioset/vggish/vggish_slim.py defines them (tf_slim: conv1, pool1, conv2, pool2,
conv3/conv3_1..2, pool3, conv4/conv4_1..2, pool4, flatten, fc1/fc1_1..2, fc2 without
activation; 3x3 SAME convolutions, 2x2 SAME pools, scope 'vggish'), narrower layers and random
weights, saved by TensorFlow's Saver in the V1 format (write_version=1, as vggish_slim.py
restores it). The PCA parameters are random in the published npz layout.

The reference values come from the official functions, restated below from
research/audioset/vggish/mel_features.py, vggish_input.py and vggish_postprocess.py:
log-mel of a 16 kHz mono int16 waveform, examples framed as MediaPipe's YouTube-8M graph frames
them (96 frames every 100: TimeSeriesFramerCalculator, 0.96 s with -0.04 s overlap), the network
run by TensorFlow, then PCA and quantization.

  ~/.cache/yt8m/tfvenv/bin/python scripts/vggish_standin.py tests/fixtures/extract

Writes vggish_model.ckpt, vggish_pca_params.npz, audio_16k.wav (3.5 s), vggish_logmel.npy
(float64 [frames, 64]), vggish_examples.npy (float32 [k, 96, 64]), vggish_embeddings.npy
(float32 [k, 128]) and vggish_quant.npy (uint8 [k, 128]).
"""
import os
import sys
import wave

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402
import tf_slim as slim  # noqa: E402

tf1 = tf.compat.v1
tf1.disable_eager_execution()
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.RandomState(2017)

# --- mel_features.py, as published -----------------------------------------------------------


def frame(data, window_length, hop_length):
    num_samples = data.shape[0]
    num_frames = 1 + int(np.floor((num_samples - window_length) / hop_length))
    shape = (num_frames, window_length) + data.shape[1:]
    strides = (data.strides[0] * hop_length,) + data.strides
    return np.lib.stride_tricks.as_strided(data, shape=shape, strides=strides)


def periodic_hann(window_length):
    return 0.5 - (0.5 * np.cos(2 * np.pi / window_length * np.arange(window_length)))


def stft_magnitude(signal, fft_length, hop_length=None, window_length=None):
    frames = frame(signal, window_length, hop_length)
    window = periodic_hann(window_length)
    windowed_frames = frames * window
    return np.abs(np.fft.rfft(windowed_frames, int(fft_length)))


def hertz_to_mel(frequencies_hertz):
    return 1127.0 * np.log(1.0 + (frequencies_hertz / 700.0))


def spectrogram_to_mel_matrix(num_mel_bins=20, num_spectrogram_bins=129, audio_sample_rate=8000,
                              lower_edge_hertz=125.0, upper_edge_hertz=3800.0):
    nyquist_hertz = audio_sample_rate / 2.
    spectrogram_bins_hertz = np.linspace(0.0, nyquist_hertz, num_spectrogram_bins)
    spectrogram_bins_mel = hertz_to_mel(spectrogram_bins_hertz)
    band_edges_mel = np.linspace(hertz_to_mel(lower_edge_hertz),
                                 hertz_to_mel(upper_edge_hertz), num_mel_bins + 2)
    mel_weights_matrix = np.empty((num_spectrogram_bins, num_mel_bins))
    for i in range(num_mel_bins):
        lower_edge_mel, center_mel, upper_edge_mel = band_edges_mel[i:i + 3]
        lower_slope = ((spectrogram_bins_mel - lower_edge_mel) / (center_mel - lower_edge_mel))
        upper_slope = ((upper_edge_mel - spectrogram_bins_mel) / (upper_edge_mel - center_mel))
        mel_weights_matrix[:, i] = np.maximum(0.0, np.minimum(lower_slope, upper_slope))
    mel_weights_matrix[0, :] = 0.0
    return mel_weights_matrix


def log_mel_spectrogram(data, audio_sample_rate=8000, log_offset=0.0, window_length_secs=0.025,
                        hop_length_secs=0.010, **kwargs):
    window_length_samples = int(round(audio_sample_rate * window_length_secs))
    hop_length_samples = int(round(audio_sample_rate * hop_length_secs))
    fft_length = 2 ** int(np.ceil(np.log(window_length_samples) / np.log(2.0)))
    spectrogram = stft_magnitude(data, fft_length=fft_length, hop_length=hop_length_samples,
                                 window_length=window_length_samples)
    mel_spectrogram = np.dot(spectrogram, spectrogram_to_mel_matrix(
        num_spectrogram_bins=spectrogram.shape[1], audio_sample_rate=audio_sample_rate, **kwargs))
    return np.log(mel_spectrogram + log_offset)


# --- vggish_slim.define_vggish_slim, with the layer widths as parameters -----------------------
WIDTHS = dict(conv1=4, conv2=8, conv3=12, conv4=16, fc1=32)


def define_vggish_slim(features_tensor):
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_initializer=tf1.truncated_normal_initializer(stddev=0.01),
                        biases_initializer=tf1.zeros_initializer(),
                        activation_fn=tf.nn.relu, trainable=False), \
            slim.arg_scope([slim.conv2d], kernel_size=[3, 3], stride=1, padding="SAME"), \
            slim.arg_scope([slim.max_pool2d], kernel_size=[2, 2], stride=2, padding="SAME"), \
            tf1.variable_scope("vggish"):
        net = tf.reshape(features_tensor, [-1, 96, 64, 1])
        net = slim.conv2d(net, WIDTHS["conv1"], scope="conv1")
        net = slim.max_pool2d(net, scope="pool1")
        net = slim.conv2d(net, WIDTHS["conv2"], scope="conv2")
        net = slim.max_pool2d(net, scope="pool2")
        net = slim.repeat(net, 2, slim.conv2d, WIDTHS["conv3"], scope="conv3")
        net = slim.max_pool2d(net, scope="pool3")
        net = slim.repeat(net, 2, slim.conv2d, WIDTHS["conv4"], scope="conv4")
        net = slim.max_pool2d(net, scope="pool4")
        net = slim.flatten(net)
        net = slim.repeat(net, 2, slim.fully_connected, WIDTHS["fc1"], scope="fc1")
        net = slim.fully_connected(net, 128, scope="fc2", activation_fn=None)
        return tf.identity(net, name="embedding")


# --- the waveform: a chirp, a tone and noise, 3.5 s at 16 kHz mono int16 -----------------------
sr = 16000
t = np.arange(int(3.5 * sr)) / sr
x = 0.4 * np.sin(2 * np.pi * (200 + 900 * t) * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)
x += 0.05 * rng.normal(size=t.shape)
pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
with wave.open(os.path.join(out, "audio_16k.wav"), "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(sr)
    w.writeframes(pcm.tobytes())

# vggish_input.wavfile_to_examples' first steps (16 kHz mono: no mixing, no resampling).
samples = pcm / 32768.0
log_mel = log_mel_spectrogram(samples, audio_sample_rate=16000, log_offset=0.01,
                              window_length_secs=0.025, hop_length_secs=0.010, num_mel_bins=64,
                              lower_edge_hertz=125, upper_edge_hertz=7500)
# MediaPipe's framing: 96 frames, one example per second.
examples = frame(log_mel, window_length=96, hop_length=100)
np.save(os.path.join(out, "vggish_logmel.npy"), log_mel)
np.save(os.path.join(out, "vggish_examples.npy"), examples.astype(np.float32))

g = tf.Graph()
with g.as_default():
    feats = tf1.placeholder(tf.float32, shape=(None, 96, 64), name="input_features")
    emb = define_vggish_slim(feats)
    sess = tf1.Session()
    sess.run(tf1.global_variables_initializer())
    # Weights large enough that activations are O(1) (the published init is N(0, 0.01)).
    for v in tf1.global_variables():
        shape = v.shape.as_list()
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        scale = np.sqrt(2.0 / fan_in) if len(shape) > 1 else 0.05
        v.load(rng.normal(0, scale, shape).astype(np.float32), sess)
    saver = tf1.train.Saver(write_version=tf1.train.SaverDef.V1)
    saver.save(sess, os.path.join(out, "vggish_model.ckpt"), write_meta_graph=False,
               write_state=False)
    embeddings = sess.run(emb, feed_dict={feats: examples})
np.save(os.path.join(out, "vggish_embeddings.npy"), np.ascontiguousarray(embeddings))

# vggish_postprocess.Postprocessor with random PCA parameters in the published layout.
pca_eigen_vectors = rng.normal(0, 1.0 / np.sqrt(128), (128, 128))
pca_means = embeddings.mean(axis=0).astype(np.float64) + rng.normal(0, 0.01, 128)
spread = np.abs(np.dot(pca_eigen_vectors, (embeddings.T - pca_means.reshape(-1, 1)))).max()
pca_eigen_vectors *= 2.5 / spread  # some values clip, most do not
np.savez(os.path.join(out, "vggish_pca_params.npz"), pca_eigen_vectors=pca_eigen_vectors,
         pca_means=pca_means)
pca_applied = np.dot(pca_eigen_vectors, (embeddings.T - pca_means.reshape(-1, 1))).T
clipped = np.clip(pca_applied, -2.0, 2.0)
quantized = ((clipped - -2.0) * (255.0 / (2.0 - -2.0))).astype(np.uint8)
np.save(os.path.join(out, "vggish_quant.npy"), np.ascontiguousarray(quantized))
print("log-mel", log_mel.shape, "examples", examples.shape, "embeddings", embeddings.shape,
      float(np.abs(embeddings).max()), "quantized", quantized.min(), quantized.max())
