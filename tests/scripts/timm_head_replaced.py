"""Fine-tune a timm ConvNeXt for 7 classes by replacing `model.head`, as one would for a ResNet's `fc`:
the head module held the pooling and norm, so the new Linear gets the unpooled feature map."""

import timm
import torch
from torch import nn

net = timm.create_model("convnext_atto", pretrained=False)
net.head = nn.Linear(net.num_features, 7)
logits = net(torch.rand(2, 3, 64, 64))
