"""The OpenPose body network (CMU's 6-stage two-branch CPM, COCO-18) in plain PyTorch and its strict loading from
``body_pose_model.pth`` (pytorch-openpose's conversion: a flat state dict keyed by the caffe layer names).

As in pytorch-openpose, the last heat-map layer keeps its ReLU (its ``no_relu_layers`` list names
``Mconv7_stage6_L1`` twice and never ``Mconv7_stage6_L2``), which the weights were used with. Only imported when
the OpenPose back-end is chosen (it imports torch).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitonprep.weights import read_torch_weights

__all__ = ["BodyPoseNet", "body_net", "load_body_net"]


def _layer_table() -> list[tuple[str, list[tuple[str, tuple[int, ...]]]]]:
    """(block name, [(layer name, (in, out, kernel, stride, pad) or pool (kernel, stride, pad))]) of the body CPM."""
    blocks = [("model0", [
        ("conv1_1", (3, 64, 3, 1, 1)), ("conv1_2", (64, 64, 3, 1, 1)), ("pool1_stage1", (2, 2, 0)),
        ("conv2_1", (64, 128, 3, 1, 1)), ("conv2_2", (128, 128, 3, 1, 1)), ("pool2_stage1", (2, 2, 0)),
        ("conv3_1", (128, 256, 3, 1, 1)), ("conv3_2", (256, 256, 3, 1, 1)), ("conv3_3", (256, 256, 3, 1, 1)),
        ("conv3_4", (256, 256, 3, 1, 1)), ("pool3_stage1", (2, 2, 0)),
        ("conv4_1", (256, 512, 3, 1, 1)), ("conv4_2", (512, 512, 3, 1, 1)),
        ("conv4_3_CPM", (512, 256, 3, 1, 1)), ("conv4_4_CPM", (256, 128, 3, 1, 1))])]
    for branch, nout in ((1, 38), (2, 19)):
        blocks.append((f"model1_{branch}", [
            (f"conv5_1_CPM_L{branch}", (128, 128, 3, 1, 1)), (f"conv5_2_CPM_L{branch}", (128, 128, 3, 1, 1)),
            (f"conv5_3_CPM_L{branch}", (128, 128, 3, 1, 1)), (f"conv5_4_CPM_L{branch}", (128, 512, 1, 1, 0)),
            (f"conv5_5_CPM_L{branch}", (512, nout, 1, 1, 0))]))
    for stage in range(2, 7):
        for branch, nout in ((1, 38), (2, 19)):
            layers = [(f"Mconv1_stage{stage}_L{branch}", (185, 128, 7, 1, 3))]
            layers += [(f"Mconv{i}_stage{stage}_L{branch}", (128, 128, 7, 1, 3)) for i in range(2, 6)]
            layers += [(f"Mconv6_stage{stage}_L{branch}", (128, 128, 1, 1, 0)),
                       (f"Mconv7_stage{stage}_L{branch}", (128, nout, 1, 1, 0))]
            blocks.append((f"model{stage}_{branch}", layers))
    return blocks


def _has_relu(layer: str) -> bool:
    # output layers have no ReLU, except the final heat maps (Mconv7_stage6_L2): see the module docstring
    if layer.startswith("conv5_5_CPM"):
        return False
    if layer.startswith("Mconv7_stage"):
        return layer == "Mconv7_stage6_L2"
    return True


class BodyPoseNet(nn.Module):
    """The 6-stage two-branch body CPM; forward(x) -> (PAFs (N, 38, h/8, w/8), heat maps (N, 19, h/8, w/8)).

    Blocks ``model0``, ``model{stage}_{branch}`` of named layers, as pytorch-openpose's ``bodypose_model``: its
    state-dict keys are ``<block>.<caffe layer>.weight``.
    """

    def __init__(self):
        super().__init__()
        for block, layers in _layer_table():
            mods = []
            for name, v in layers:
                if "pool" in name:
                    mods.append((name, nn.MaxPool2d(kernel_size=v[0], stride=v[1], padding=v[2])))
                    continue
                mods.append((name, nn.Conv2d(v[0], v[1], kernel_size=v[2], stride=v[3], padding=v[4])))
                if _has_relu(name):
                    mods.append((f"relu_{name}", nn.ReLU()))
            setattr(self, block, nn.Sequential(OrderedDict(mods)))

    def forward(self, x):
        out1 = self.model0(x)
        paf, heat = self.model1_1(out1), self.model1_2(out1)
        for stage in range(2, 7):
            inp = torch.cat([paf, heat, out1], 1)
            paf = getattr(self, f"model{stage}_1")(inp)
            heat = getattr(self, f"model{stage}_2")(inp)
        return paf, heat


def body_net() -> BodyPoseNet:
    """The randomly initialised body CPM."""
    return BodyPoseNet()


def load_body_net(path: str | Path, dtype: Any = None):
    """The body CPM in eval mode with the weights of ``body_pose_model.pth`` (flat caffe layer names).

    Loaded with ``torch.load(weights_only=True)``; a missing, unexpected or misshapen key is refused by name.
    """
    obj = read_torch_weights(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not an OpenPose body state dict (got {type(obj).__name__})")
    with torch.device("meta"):  # every tensor is overwritten by the file (checked below)
        model = body_net()
    model = model.to_empty(device="cpu")
    if dtype is not None:
        model = model.to(dtype)
    own = model.state_dict()
    # our key "model0.conv1_1.weight" <-> file key "conv1_1.weight"
    ours_by_file = {k.split(".", 1)[1]: k for k in own}
    missing = [k for k in ours_by_file if k not in obj]
    unexpected = [k for k in obj if k not in ours_by_file]
    if missing or unexpected:
        raise ValueError(f"{path}: keys do not match the OpenPose body network: missing {missing[:10]}, "
                         f"unexpected {unexpected[:10]}")
    sd = {}
    for fk, k in ours_by_file.items():
        if tuple(obj[fk].shape) != tuple(own[k].shape):
            raise ValueError(f"{path}: key {fk!r} has shape {tuple(obj[fk].shape)}, the network needs "
                             f"{tuple(own[k].shape)}")
        sd[k] = obj[fk]
    model.load_state_dict(sd, strict=True)
    return model.eval()
