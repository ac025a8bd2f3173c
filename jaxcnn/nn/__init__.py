"""Flax linen modules that hold parameters and state and call :mod:`jaxcnn.functional`.

Every layer class has a ``summary_kind`` class variable (conv, pool, dense,
norm, activation, flatten, dropout, block, local) for :mod:`jaxcnn.summary`.
Modules whose behaviour differs between training and inference (BatchNorm,
Dropout) are called ``module(x, train=...)``.
"""
from jaxcnn.nn.activation import ELU, LeakyReLU, Maxout, ReLU, ScaledTanh, Sigmoid, Tanh
from jaxcnn.nn.batch_norm import BatchNorm
from jaxcnn.nn.conv import LECUN_C3_TABLE, ConnectionTableConv, Conv
from jaxcnn.nn.dropout import Dropout
from jaxcnn.nn.linear import Dense, Flatten
from jaxcnn.nn.pool import AvgPool, GlobalAvgPool, GlobalMaxPool, LpPool, MaxPool, Subsampling
from jaxcnn.nn.local import LocallyConnected2D, TiledConv2D
from jaxcnn.nn.norm import GroupNorm, InstanceNorm, LayerNorm, LocalResponseNorm
from jaxcnn.nn.adaptive_pool import AdaptiveAvgPool, AdaptiveMaxPool
