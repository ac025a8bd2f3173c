"""summary.conv_layers: the geometry of every convolution a model performs (shape evaluation only)."""
from jaxcnn import models
from jaxcnn.summary import conv_layers


def test_conv_layers_of_lenet5_and_resnet20():
    lenet = conv_layers(models.get("lenet5"), (8, 28, 28, 1))
    assert [layer.name for layer in lenet] == ["conv1", "conv2"]
    conv2 = lenet[1]
    assert conv2.input_shape == (8, 14, 14, 20) and conv2.kernel_shape == (5, 5, 20, 50)
    assert conv2.padding == ((2, 2), (2, 2)) and conv2.output_shape == (8, 14, 14, 50)
    assert conv2.macs == 8 * 14 * 14 * 50 * 5 * 5 * 20
    resnet = conv_layers(models.get("resnet20"), (2, 32, 32, 3))
    assert sum(layer.count for layer in resnet) == 19  # 1 stem + 9 blocks x 2 convs
    assert len(conv_layers(models.get("resnet20"), (2, 32, 32, 3), unique=False)) == 19
    strided = [layer for layer in resnet if layer.stride == (2, 2)]
    assert [layer.output_shape[1:3] for layer in strided] == [(16, 16), (8, 8)]
