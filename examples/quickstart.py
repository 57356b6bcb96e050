"""rnnkit as a library in 60 lines: a character LSTM on text that Python itself ships.

Trains a layer-normalized LSTM (with a learned initial state and forget-gate bias 1) on
the help texts of ``pydoc_data.topics`` with plain truncated BPTT, prints the loss going
down, and samples from the result. Runs offline in about a minute on 2 CPU cores.

    python examples/quickstart.py [--steps 300]
"""

import argparse
import time
from pydoc_data.topics import topics

import torch

import rnnkit


class CharLSTM(torch.nn.Module):
    def __init__(self, vocab: int, hidden: int = 256) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, 64)
        self.rnn = rnnkit.LSTM(64, hidden, batch_first=True, layer_norm=True,
                               learned_initial_state=True, forget_bias=1.0)
        self.head = torch.nn.Linear(hidden, vocab)

    def forward(self, tokens, state=None):
        out, state = self.rnn(self.embed(tokens), state)
        return self.head(out), state


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--chunk", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args()
    torch.manual_seed(0)
    text = "\n".join(topics[k] for k in sorted(topics))
    chars = sorted(set(text))
    data = torch.tensor([chars.index(ch) for ch in text])
    streams = data[: len(data) // args.batch * args.batch].view(args.batch, -1)
    model = CharLSTM(len(chars))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    state, pos, start = None, 0, time.time()
    for step in range(1, args.steps + 1):
        if pos + args.chunk + 1 > streams.shape[1]:
            state, pos = None, 0
        x, y = streams[:, pos : pos + args.chunk], streams[:, pos + 1 : pos + args.chunk + 1]
        logits, state = model(x, state)
        state = rnnkit.detach_state(state)  # carry the state, cut the gradient (TBPTT)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        pos += args.chunk
        if step % 25 == 0 or step == 1:
            print(f"step {step:4d}  loss {loss.item():.3f} nats/char  {time.time() - start:5.1f}s")
    model.eval()
    with torch.no_grad():
        token, state, out = torch.tensor([[chars.index("T")]]), None, ["T"]
        for _ in range(300):
            logits, state = model(token, state)
            token = torch.multinomial(torch.softmax(logits[:, -1] / 0.8, -1), 1)
            out.append(chars[token.item()])
    print("sample:\n" + "".join(out))


if __name__ == "__main__":
    main()
