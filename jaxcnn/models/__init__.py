"""Architectures built from :mod:`jaxcnn.nn`, and a name registry.

``models.get(name, **kwargs)`` builds a registered model, ``models.names()``
lists them, ``models.input_shape(name)`` gives the (H, W, C) a model was
designed for. Every model is a flax Module called ``model(x, train=False)`` on
NHWC images and returns ``(N, num_classes)`` logits.
"""
from jaxcnn.models.alexnet import AlexNet
from jaxcnn.models.googlenet import GoogLeNet, Inception
from jaxcnn.models.lenet import LeNet5, LeNet5Adaptive, LeNet5Classic
from jaxcnn.models.registry import INPUT_SHAPES, MODELS, get, input_shape, names
from jaxcnn.models.resnet import (
    BasicBlock,
    Bottleneck,
    CifarResNet,
    ResNet,
    ResNet18,
    ResNet20,
    ResNet32,
    ResNet34,
    ResNet44,
    ResNet50,
    ResNet56,
    ResNet110,
)
from jaxcnn.models.vgg import VGG, VGG11, VGG16
