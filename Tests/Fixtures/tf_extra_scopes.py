"""More variable-scope scenarios, run in TensorFlow 2.21 (tf.compat.v1) to produce variable-scopes-extra.json.

usage: TF_USE_LEGACY_KERAS=1 python tf_extra_scopes.py > variable-scopes-extra.json
"""
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"]="3"; os.environ["TF_USE_LEGACY_KERAS"]="1"
import tensorflow as tf
tf1=tf.compat.v1; tf1.disable_eager_execution()
vs=tf1.variable_scope
gv=lambda n,s=(),**k: tf1.get_variable(n,shape=s,**k)
V=lambda n: tf.Variable(0.0,name=n)
def dtype_mismatch():
    with vs('d'): gv('w',(1,))
    with vs('d',reuse=True): gv('w',(1,),dtype=tf.float64)
def default_names():
    for i in range(3):
        with vs(None, default_name='layer'): gv('w',(1,)); V('v')
    with vs('outer'):
        with vs(None, default_name='layer'): gv('w',(1,))
    with vs('outer'):
        with vs(None, default_name='layer'): gv('w2',(1,)); V('v')
def reenter_object():
    with vs('a') as sa: gv('w',(1,))
    with vs('b'):
        with vs(sa, reuse=True): gv('w',(1,)); V('v')
        with vs(sa): gv('u',(1,)); V('v')
def reuse_variables():
    with vs('r') as s:
        gv('w',(1,)); s.reuse_variables(); gv('w',(1,))
    with vs(s): gv('w',(1,))
def inherit_false():
    with vs('p'): gv('w',(1,))
    with vs('p', reuse=True):
        with vs('q', reuse=False): gv('w',(1,))
def name_scope_ignored():
    with tf1.name_scope('ns'):
        gv('w',(1,)); V('v')
        with vs('a'): gv('w',(1,)); V('v')
    with tf1.name_scope('ns'): V('v')
def case_insensitive():
    V('X'); V('x'); V('x_1'); V('x')
def var_then_get():
    with vs('a'): V('w')
    with vs('a'): gv('w',(1,))
def empty_scope():
    with vs('s1'):
        with vs(''): gv('v4',(1,)); V('v')
    with vs(''): gv('top',(1,))
def auto_in_reuse():
    with vs('k'): gv('w',(1,))
    with vs('k', reuse=True):
        with vs('m', reuse=tf1.AUTO_REUSE): gv('z',(1,))
def nested_reentry_names():
    for i in range(2):
        with vs('dec', reuse=i>0):
            with vs('rnn'): gv('k',(1,)); V('v')
def default_name_reuse_error():
    with vs(None, default_name='x', reuse=True): pass
def partition_reuse():
    with vs('p', partitioner=tf1.fixed_size_partitioner(2)): gv('e',(5,2))
    with vs('p', partitioner=tf1.fixed_size_partitioner(2), reuse=True): gv('e',(5,2))
    with vs('p', partitioner=tf1.fixed_size_partitioner(3), reuse=True): gv('e',(5,2))
def partition_small():
    with vs('p', partitioner=tf1.fixed_size_partitioner(4)): gv('e',(2,3))
def object_inside_reusing_parent():
    with vs('o') as so: pass
    with vs('z', reuse=True):
        with vs(so): gv('w',(1,))
out={}
for name, fn in list(globals().items()):
    if not callable(fn) or name.startswith('_') or fn.__module__!='__main__' or name in ('gv','V','vs'): continue
    g=tf.Graph()
    with g.as_default():
        try:
            fn(); out[name]={"variables":[[v.name[:-2],v.shape.as_list()] for v in tf1.global_variables()]}
        except (ValueError,TypeError) as e:
            out[name]={"variables":[[v.name[:-2],v.shape.as_list()] for v in tf1.global_variables()],"error":str(e).splitlines()[0]}
print(json.dumps(out))
