"""Prompts to ``encoder_hidden_states``: a pipeline's tokenizer and CLIP text encoder (transformers).

As Stable Diffusion 1/2 pipelines encode a prompt: tokens padded to the tokenizer's
``model_max_length`` (77 for CLIP) and truncated, then the text encoder's last hidden state,
(B, tokens, dim), which the UNet cross-attends to. The empty prompt gives the null condition of
classifier-free guidance.
"""
from __future__ import annotations

import torch


class PromptEncoder(torch.nn.Module):
    """``encoder(prompts) -> (B, tokens, dim)``: a transformers tokenizer and text encoder (e.g.
    ``CLIPTokenizer`` and ``CLIPTextModel``) that run on the text encoder's device, without gradients."""

    def __init__(self, tokenizer, text_encoder):
        super().__init__()
        self.tokenizer, self.text_encoder = tokenizer, text_encoder

    @property
    def dim(self) -> int:
        return int(self.text_encoder.config.hidden_size)

    def forward(self, prompts: list[str]) -> torch.Tensor:
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompts must be a non-empty list of strings, got {prompts!r}")
        tokens = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt")
        device = next(self.text_encoder.parameters()).device
        with torch.no_grad():
            return self.text_encoder(tokens.input_ids.to(device))[0]
