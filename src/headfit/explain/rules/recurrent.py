"""HF125: a recurrent layer (``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``) gets an input or a hidden state of
another shape than it was built for.

The hidden state is always ``[num_layers * num_directions, batch, hidden_size]``, even with
``batch_first=True``; the input's features are always its last dimension. So each number of the message
names one mistake: the first dimension of ``h0`` (layers and directions), the second (the batch: a fixed
batch size, the last smaller batch, or a batch_first layout read the other way), the third (hidden_size),
or the input's width (an embedding or encoder of another width feeding the layer).
"""

from __future__ import annotations

import re

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import parse_ints, shape_str
from headfit.explain.engine import rule
from headfit.explain.parse import ParsedError
from headfit.explain.rules._support import diagnose

CODE = "HF125"

_INPUT_SIZE = re.compile(r"input\.size\(-1\) must be equal to input_size\. Expected (\d+), got (\d+)")
_HIDDEN = re.compile(
    r"Expected hidden(?:\[(?P<which>\d)\])? size \((?P<want>[\d, ]+)\), got [\[(](?P<got>[\d, ]+)[\])]?"
)
_RANK = re.compile(r"(?:(?P<kind>\w+): )?Expected input to be 2D or 3D, got (?P<got>\d)D")
_OLD_RANK = re.compile(r"input must have 3 dimensions, got (?P<got>\d)")
_HX_RANK = re.compile(
    r"For (?P<input>unbatched 2-D|batched 3-D) input, hx(?: and cx)? should also be (?P<want>\d)-D but got "
    r"\(?(?P<got>\d)-D"
)
# widths of the encoders that feed recurrent layers most often
KNOWN_WIDTHS = {
    768: "BERT-base / RoBERTa-base hidden size",
    1024: "BERT-large / RoBERTa-large hidden size",
    300: "word2vec / GloVe / fastText 300-d vectors",
    100: "GloVe 100-d vectors",
    200: "GloVe 200-d vectors",
    50: "GloVe 50-d vectors",
}
H0_FIX = (
    "h0 = torch.zeros(self.num_layers * (2 if self.bidirectional else 1), "
    "x.size(0 if self.batch_first else 1), self.hidden_size, device=x.device)"
)


@rule(CODE, priority=50, needs="must be equal to input_size")
def input_width(parsed: ParsedError) -> Diagnosis | None:
    m = _INPUT_SIZE.search(parsed.message)
    if not m:
        return None
    built, got = int(m[1]), int(m[2])
    facts = [f"the recurrent layer was built with input_size={built}; the input's last dimension has {got}"]
    facts.extend(f"{w} = {KNOWN_WIDTHS[w]}" for w in (got, built) if w in KNOWN_WIDTHS)
    causes = [
        Cause(
            f"the layer before it (an embedding, an encoder) emits {got} features, not the {built} the "
            "recurrent layer was configured for: the two were configured apart",
            0.55,
            fix=f"build the recurrent layer from its producer: nn.LSTM(input_size=encoder_width, ...)  # {got} here",
        ),
        Cause(
            "the features are not in the last dimension: a [N, C, L] conv output (or [N, L] ids) reaches a "
            "layer that reads [L, N, F] / [N, L, F]",
            0.3,
            fix="x = x.transpose(1, 2)  # [N, C, L] -> [N, L, C]; the features must be the last dimension",
        ),
    ]
    if got > built:
        causes.insert(
            1,
            Cause(
                f"{got} = {built} + {got - built}: another {got - built} features are concatenated to the "
                f"{built} the layer was built for (an option of training, such as extra embeddings, differs now)",
                0.4,
                fix="use the same feature options as when the layer was built (or input_size = the concatenated width)",
            ),
        )
    causes.append(
        Cause(
            f"rebuild the layer for {got} inputs (a pretrained recurrent layer then loses its input weights)",
            0.2,
            attribute="input_size",
            fix=f"nn.LSTM(input_size={got}, hidden_size=..., ...)",
        )
    )
    return diagnose(
        CODE, parsed, f"a recurrent layer built for {built} input features gets {got}", facts, causes
    )


@rule(
    CODE,
    priority=50,
    needs=("Expected hidden size (", "Expected hidden[0] size (", "Expected hidden[1] size ("),
)
def hidden_shape(parsed: ParsedError) -> Diagnosis | None:
    m = _HIDDEN.search(parsed.message)
    if not m:
        return None
    want, got = parse_ints(m["want"]), parse_ints(m["got"])
    if len(want) != 3 or not got:
        return None
    state = "c0 (the cell state)" if m["which"] == "1" else "h0"
    layers, batch, width = want
    facts = [
        f"{state} must be [num_layers * num_directions, batch, hidden_size] = {shape_str(want)} "
        "(batch in dim 1 even with batch_first=True)",
        f"it is {shape_str(got)}",
    ]
    causes = _hidden_causes(want, got, state, facts)
    return diagnose(
        CODE,
        parsed,
        f"the recurrent layer's {state.split(' ')[0]} is {shape_str(got)}, not {shape_str([layers, batch, width])}",
        facts,
        causes,
    )


def _hidden_causes(want: list[int], got: list[int], state: str, facts: list[str]) -> list[Cause]:
    layers, batch, width = want
    if len(got) == 2:
        facts.append("the state has no num_layers * num_directions dimension")
        return [
            Cause(
                f"{state} was built as [batch, hidden_size]; it needs the leading num_layers * num_directions "
                f"dimension ({layers})",
                0.8,
                fix=f"{state.split(' ')[0]} = {state.split(' ')[0]}.unsqueeze(0)  # {shape_str(got)} -> "
                f"{shape_str([1, *got])}; or {H0_FIX}",
            )
        ]
    causes = []
    if got[0] != layers:
        facts.append(
            f"dim 0: {got[0]} for num_layers * num_directions, the layer needs {layers}"
            + (" (2 layers, or 1 bidirectional layer)" if layers == 2 * got[0] == 2 else "")
        )
        causes.append(
            Cause(
                f"{state} was built for {got[0]} layer(s) x direction(s); the layer has num_layers * "
                f"num_directions = {layers} (bidirectional=True doubles it)",
                0.8,
                attribute="num_layers",
                fix=H0_FIX,
            )
        )
    if len(got) > 1 and got[1] != batch:
        facts.append(f"dim 1 is the batch: the input has {batch} sequences, {state} was made for {got[1]}")
        causes.extend(_batch_causes(batch, got[1], state))
    if len(got) > 2 and got[2] != width:
        facts.append(f"dim 2: hidden_size {width}, the state has {got[2]}")
        causes.append(
            Cause(
                f"{state} was built for hidden_size={got[2]}, the layer has hidden_size={width}",
                0.7,
                attribute="hidden_size",
                fix=H0_FIX,
            )
        )
    return causes or [Cause("the hidden state was built for another layer", 0.5, fix=H0_FIX)]


def _batch_causes(batch: int, made_for: int, state: str) -> list[Cause]:
    """The state's batch differs from the input's: a fixed batch size (the last batch is smaller), or the
    input's layout read the other way (batch_first), so the layer takes the sequence length for the batch."""
    causes = [
        Cause(
            f"{state} is sized with a fixed batch size ({made_for}) instead of from the input ({batch} sequences)",
            0.6,
            fix=H0_FIX,
        ),
        Cause(
            f"the input's layout and `batch_first` disagree: the layer reads {batch} as the batch; one of "
            f"{batch} and {made_for} is the sequence length",
            # the layer sees more sequences than the state was made for: a last batch is never larger, the
            # sequence axis read as the batch is
            0.65 if batch > made_for else 0.45,
            attribute="batch_first",
            fix="nn.LSTM(..., batch_first=True) for inputs [N, L, F] (the default reads [L, N, F]); or "
            "x = x.transpose(0, 1)",
        ),
    ]
    if batch < made_for:
        causes.append(
            Cause(
                f"the last batch of the epoch has {batch} sequences, fewer than the {made_for} the state was made for",
                0.5,
                fix=f"DataLoader(..., drop_last=True)  # or size {state.split(' ')[0]} from the input",
            )
        )
    return causes


@rule(
    CODE,
    priority=50,
    needs=("Expected input to be 2D or 3D, got", "input must have 3 dimensions, got", "input, hx"),
)
def input_rank(parsed: ParsedError) -> Diagnosis | None:
    m = _RANK.search(parsed.message) or _OLD_RANK.search(parsed.message)
    if m:
        got = int(m["got"])
        kind = m.groupdict().get("kind") or "the recurrent layer"
        facts = [
            f"`{kind}` takes [L, F] (one sequence) or [L, N, F] / [N, L, F] (a batch); the input is {got}D"
        ]
        if got == 4:
            causes = [
                Cause(
                    "a [N, C, H, W] feature map reaches the recurrent layer: make it a sequence first",
                    0.7,
                    fix="x = x.flatten(2).transpose(1, 2)  # [N, C, H, W] -> [N, H*W, C], with batch_first=True",
                )
            ]
        elif got < 2:
            causes = [Cause("the input has no sequence axis", 0.6, fix="x = x.unsqueeze(0)")]
        else:
            causes = [
                Cause(
                    "torch < 1.11 took batched input only: the batch dimension is missing",
                    0.6,
                    fix="x = x.unsqueeze(1)  # [L, F] -> [L, 1, F] (batch_first: unsqueeze(0))",
                )
            ]
        return diagnose(CODE, parsed, f"{kind} expects a 2D or 3D input, got {got}D", facts, causes)
    m = _HX_RANK.search(parsed.message)
    if not m:
        return None
    unbatched = m["input"].startswith("unbatched")
    facts = [
        f"the input is {'unbatched (2-D: one sequence)' if unbatched else 'batched (3-D)'}; the hidden state "
        f"must be {m['want']}-D to match, it is {m['got']}-D"
    ]
    fix = (
        "x = x.unsqueeze(1)  # a batch of one sequence (batch_first: x.unsqueeze(0)), to match the batched h0"
        if unbatched
        else "h0 = h0.unsqueeze(0)  # [N, H] -> [1, N, H]: num_layers * num_directions first"
    )
    cause = Cause(
        "the input and the hidden state disagree on the batch dimension (one of them lost or never had it)",
        0.7,
        fix=fix,
    )
    return diagnose(
        CODE, parsed, "the recurrent layer's input and hidden state have different ranks", facts, [cause]
    )
