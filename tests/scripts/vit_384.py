"""Fine-tune torchvision's ViT-B/16 on 384x384 crops."""

import torch
from torchvision.models import vit_b_16

model = vit_b_16(weights=None, num_classes=5)
batch = torch.rand(1, 3, 384, 384)
logits = model(batch)
