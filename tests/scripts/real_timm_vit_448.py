"""timm ViT-B/16 trained on 448x448 pedestrian-attribute crops (CSRA).

From https://github.com/Kevinz-code/CSRA/issues/3
(`AssertionError: Input image size (448*448) doesn't match model (224*224)`), with a tiny ViT so it runs fast.
"""

import timm
import torch

model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=26)
model.train()
imgs = torch.rand(1, 3, 448, 448)
logits = model(imgs)
