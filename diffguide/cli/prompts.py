"""``--prompt`` and ``--negative-prompt``: the condition of a text-conditioned latent prior."""
from __future__ import annotations

import dataclasses

from .errors import UsageError


def add_prompt_options(parser) -> None:
    parser.add_argument("--prompt", default=None,
                        help="text prompt of a text-conditioned pipeline folder (its text encoder makes the "
                             "condition; default: the empty prompt)")
    parser.add_argument("--negative-prompt", default=None,
                        help="with --guidance: the prompt guidance pushes away from (default: the empty prompt)")


def check_prompt_options(prior, args) -> None:
    """``UsageError`` for a prompt the prior cannot take, before any work."""
    if args.prompt is None and args.negative_prompt is None:
        return
    flag = "--prompt" if args.prompt is not None else "--negative-prompt"
    if not getattr(prior, "text_conditioned", False):
        raise UsageError(f"{flag}: the prior {args.prior} is not text-conditioned (its UNet has no cross-attention)")
    if prior.prompt_encoder is None:
        raise UsageError(f"{flag}: the pipeline folder {args.prior} has no text_encoder/ and tokenizer/ to encode it")
    if args.negative_prompt is not None and getattr(args, "guidance", None) is None:
        raise UsageError("--negative-prompt needs --guidance (e.g. --guidance cfg:scale=7.5)")


def prompt_condition(prior, prompt: str | None) -> dict:
    """The UNet condition of ``prompt`` (batch 1, expanded by the prior): ``{}`` for no prompt."""
    return {} if prompt is None else {"encoder_hidden_states": prior.encode_prompt(prompt)}


def with_negative_prompt(prior, negative, negative_prompt: str | None):
    """The guidance's negative branch with the negative prompt as its null condition (a null-condition branch only)."""
    if negative_prompt is None:
        return negative
    if "null" not in {field.name for field in dataclasses.fields(negative)}:
        raise UsageError(f"--negative-prompt: this guidance's negative prediction is {type(negative).__name__}, "
                         "which takes no prompt (use cfg or a variant of it)")
    return dataclasses.replace(negative, null={"encoder_hidden_states": prior.encode_prompt(negative_prompt)})
