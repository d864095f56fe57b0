"""TensorFlow 2.21's three partitioners on the seed model's variables, as JSON (source of
Tests/Fixtures/partitions.json).

usage: TF_USE_LEGACY_KERAS=1 python tf_partitions.py > ../../Tests/Fixtures/partitions.json

"cases": the seed's fixed program (static_rnn encoder, LSTMCell decoder under
variable_scope('lstm_cell_decoder', reuse=index > 0) with get_variable dense weights), built with a
partitioner either on an outer scope over the whole model (re-entering the root scope, so names do not
change: "applies": "model") or given to get_variable for the decoder's dense weights only
("applies": "dense"). Each case records, in global_variables() order, every variable or part: its own
name and shape and, for a part, the SaveSliceInfo TensorFlow gives it (full name, full shape,
var_offset, and the checkpoint slice spec). A case TensorFlow refuses records its error and the
variables made before it. The "partitioner" field uses the worker's --partitioner grammar.

"edges": single get_variable calls under a partitioned scope where TensorFlow's store does something
other than split: a scalar (never partitioned), zero-sized dimensions, reuse with other partitions.

"calls": each partitioner called directly on a shape and dtype, with the partitions it returns or the
error it raises (edge cases: axis beyond the rank, zero-sized dimensions, dtype sizes, max_shards).
"""
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import tensorflow as tf
tf1 = tf.compat.v1
tf1.disable_eager_execution()
vs = tf1.variable_scope


def make(spec):
    """A TensorFlow partitioner from the worker's --partitioner text."""
    kind, *args = spec.split(":")
    args = [int(a) for a in args]
    if kind == "fixed_size":
        return tf1.fixed_size_partitioner(args[0], axis=args[1] if len(args) > 1 else 0)
    if kind == "min_max":
        return tf1.min_max_variable_partitioner(
            max_partitions=args[0], min_slice_size=args[1], axis=args[2] if len(args) > 2 else 0)
    if kind == "axis_size":
        return tf1.variable_axis_size_partitioner(args[0], axis=args[1] if len(args) > 1 else 0)
    raise ValueError(spec)


def seed_model(hidden, hidden2, input_dim, window, horizon, dense_partitioner=None):
    """The seed's fixed graph (anchors/seed_names.py, get_variable form), batch 1."""
    LSTMCell = tf1.nn.rnn_cell.LSTMCell
    enc_in = [tf1.placeholder(tf.float32, (1, input_dim)) for _ in range(window)]
    with vs('encoder'):
        enc_out, state = tf1.nn.static_rnn(LSTMCell(hidden), enc_in, dtype=tf.float32)
    memory = tf.stack(enc_out, axis=1)  # [1, T, N]
    inputs = [tf.zeros((1, hidden2))]
    for index in range(horizon):
        with vs('lstm_cell_decoder', reuse=index > 0):
            cell = LSTMCell(hidden, reuse=index > 0)
            out, state = tf1.nn.static_rnn(cell, inputs, initial_state=state, dtype=tf.float32)
            h = out[-1]
            a = tf.nn.softmax(tf.reduce_sum(memory * h[:, None, :], axis=2))
            ctx = tf.reduce_sum(memory * a[:, :, None], axis=1)
            cc = tf.concat([ctx, h], axis=1)
            w_tilde = tf1.get_variable("weights_tilde", shape=[hidden * 2, hidden2],
                                       initializer=tf1.random_normal_initializer(stddev=0.1),
                                       partitioner=dense_partitioner)
            b_tilde = tf1.get_variable("bias_tilde", shape=[1, hidden2], initializer=tf1.zeros_initializer(),
                                       partitioner=dense_partitioner)
            w_target = tf1.get_variable("weights_target", shape=[hidden2, 1],
                                        initializer=tf1.random_normal_initializer(stddev=0.1),
                                        partitioner=dense_partitioner)
            ht = tf.nn.tanh(tf.matmul(cc, w_tilde) + b_tilde)
            inputs = [ht]
            tf.matmul(ht, w_target)


def record():
    out = []
    for v in tf1.global_variables():
        e = {"name": v.name[:-2], "shape": v.shape.as_list()}
        info = v._get_save_slice_info()
        if info is not None:
            e.update(full_name=info.full_name, full_shape=list(info.full_shape),
                     offset=list(info.var_offset), spec=info.spec)
        out.append(e)
    return out


SIZES = {"h32": (32, 32), "h64": (64, 64), "h1024": (1024, 1024)}
CASES = [
    # (partitioner, applies, sizes)
    ("fixed_size:1", "model", ["h32"]),
    ("fixed_size:2", "model", ["h32", "h64"]),
    ("fixed_size:3", "model", ["h32", "h1024"]),
    ("fixed_size:5:1", "model", ["h32"]),          # rank-1 LSTM bias: TensorFlow refuses
    ("fixed_size:5:1", "dense", ["h32"]),
    ("min_max:4:262144", "model", ["h32", "h64", "h1024"]),  # TF's default min slice: small ones stay whole
    ("min_max:64:1048576", "model", ["h1024"]),
    ("min_max:3:4096", "model", ["h32"]),
    ("min_max:7:10000", "model", ["h64"]),
    ("min_max:8:1000:1", "dense", ["h32"]),
    ("min_max:8:1000:1", "model", ["h32"]),        # axis 1 of a rank-1 bias: TensorFlow refuses
    ("axis_size:1048576", "model", ["h1024"]),
    ("axis_size:33554431", "model", ["h1024"]),
    ("axis_size:4096", "model", ["h32", "h64"]),
    ("axis_size:100", "model", ["h32"]),           # a row above the limit: one row per shard
    ("axis_size:1024:1", "dense", ["h32"]),
]


def model_cases():
    cases = []
    for spec, applies, sizes in CASES:
        for size in sizes:
            hidden, hidden2 = SIZES[size]
            case = {"partitioner": spec, "applies": applies, "hidden": hidden, "hidden2": hidden2,
                    "input_dim": 1, "window": 3, "horizon": 3}
            g = tf.Graph()
            with g.as_default():
                try:
                    if applies == "model":
                        with vs(tf1.get_variable_scope(), partitioner=make(spec)):
                            seed_model(hidden, hidden2, 1, 3, 3)
                    else:
                        seed_model(hidden, hidden2, 1, 3, 3, dense_partitioner=make(spec))
                except (ValueError, IndexError) as e:
                    case["error"] = type(e).__name__ + ": " + str(e).splitlines()[0]
                case["variables"] = record()
            cases.append(case)
    return cases


CALLS = [
    # (partitioner, shape, dtype)
    ("fixed_size:3", [10, 4], "float32"),
    ("fixed_size:4", [2, 3], "float32"),
    ("fixed_size:2", [0, 3], "float32"),
    ("fixed_size:2", [3, 0], "float32"),
    ("fixed_size:2:1", [7], "float32"),
    ("fixed_size:2:1", [3, 7], "float32"),
    ("min_max:4:262144", [1025, 4096], "float32"),
    ("min_max:100:262144", [1024, 1024], "float32"),
    ("min_max:100:262144", [1024, 1024], "float64"),
    ("min_max:100:262144", [1024, 1024], "float16"),
    ("min_max:100:262144", [1024, 1024], "int8"),
    ("min_max:3:1", [2, 5], "float32"),
    ("min_max:3:1000", [0, 5], "float32"),
    ("min_max:3:1000", [5, 0], "float32"),
    ("min_max:3:1000:1", [5], "float32"),
    ("min_max:2:1000000000000", [5, 5], "float32"),
    ("axis_size:1048576", [1025, 4096], "float32"),
    ("axis_size:16384", [1025, 4096], "float32"),
    ("axis_size:16383", [1025, 4096], "float32"),
    ("axis_size:16385", [1025, 4096], "float64"),
    ("axis_size:100", [33, 128], "float16"),
    ("axis_size:1", [4, 4], "float32"),
    ("axis_size:1000", [0, 4], "float32"),
    ("axis_size:1000", [4, 0], "float32"),
    ("axis_size:1000:1", [4], "float32"),
    ("axis_size:1000:1", [4, 1000], "float32"),
    ("axis_size:7", [3, 5, 2], "float32"),
]
# variable_axis_size_partitioner's max_shards, which the flag does not have.
MAX_SHARDS_CALLS = [
    (1048576, 0, 5, [1025, 4096], "float32"),
    (1048576, 0, 100, [1025, 4096], "float32"),
    (100, 1, 3, [4, 1000], "float32"),
]


def calls():
    out = []
    def run(entry, p, shape, dtype):
        try:
            entry["partitions"] = list(p(shape=tf.TensorShape(shape), dtype=tf.as_dtype(dtype)))
        except (ValueError, IndexError, ZeroDivisionError) as e:
            entry["error"] = type(e).__name__ + ": " + str(e).splitlines()[0]
        out.append(entry)
    for spec, shape, dtype in CALLS:
        run({"partitioner": spec, "shape": shape, "dtype": dtype, "dtype_size": tf.as_dtype(dtype).size},
            make(spec), shape, dtype)
    for max_bytes, axis, max_shards, shape, dtype in MAX_SHARDS_CALLS:
        run({"partitioner": "axis_size:%d:%d" % (max_bytes, axis), "max_shards": max_shards, "shape": shape,
             "dtype": dtype, "dtype_size": tf.as_dtype(dtype).size},
            tf1.variable_axis_size_partitioner(max_bytes, axis=axis, max_shards=max_shards), shape, dtype)
    return out


EDGES = [
    # (name, partitioner, [(variable, shape, reuse)])
    ("scalar", "fixed_size:2", [("s", [], False), ("v", [4], False)]),
    ("zero_rows_fixed", "fixed_size:2", [("z", [0, 3], False)]),
    ("zero_columns_fixed", "fixed_size:2", [("z", [3, 0], False)]),
    ("zero_rows_min_max", "min_max:3:1000", [("z", [0, 5], False)]),
    ("zero_rows_axis_size", "axis_size:1000", [("z", [0, 4], False)]),
    ("reuse_same", "min_max:4:16", [("w", [8, 4], False), ("w", [8, 4], True)]),
]


def edges():
    out = []
    for name, spec, calls in EDGES:
        entry = {"name": name, "partitioner": spec}
        g = tf.Graph()
        with g.as_default():
            try:
                for var, shape, reuse in calls:
                    with vs("p", partitioner=make(spec), reuse=reuse):
                        tf1.get_variable(var, shape=shape)
            except (ValueError, IndexError, ZeroDivisionError) as e:
                entry["error"] = type(e).__name__ + ": " + str(e).splitlines()[0]
            entry["calls"] = [[var, shape, reuse] for var, shape, reuse in calls]
            entry["variables"] = record()
        out.append(entry)
    return out


print(json.dumps({"tensorflow": tf.__version__, "cases": model_cases(), "edges": edges(), "calls": calls()},
                 indent=1))
