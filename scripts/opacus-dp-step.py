# The Opacus peer of `powersgd bench dp` (batch 32, 1 thread): per model, the non-private step
# (forward + backward of the mean loss) and the DP step up to the update (per-sample gradients,
# clipping, sum, noise, scaling: DPOptimizer.pre_step), in thread CPU time, medians of interleaved
# rounds. Prints one JSON object per line: {"model", "parameters", "nonPrivateMs", "privateMs", "ratio", "versions"}.
# The models are ours: the MLP 784-256-10, and ResNet-8 with group norm (resnet8-gn: 3x3 stem to 16
# channels, blocks at 16/32/64 channels with strides 1/2/2 and 1x1 shortcuts where the shape
# changes, GroupNorm(min(32, C), C) after every convolution, as opacus.validators fixes batch norm).
# Needs torch and opacus in the Python used:
#   ~/.venvs/peers/bin/pip install --no-deps opacus opt_einsum scipy
# Usage: ~/.venvs/peers/bin/python scripts/opacus-dp-step.py [--repeats N] [--batch-size B] [--models mlp,resnet8-gn]
import argparse, json, statistics, time, warnings
import torch
import opacus
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
nn = torch.nn

def norm(c): return nn.GroupNorm(min(32, c), c)

class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.bn1 = norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.bn2 = norm(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), norm(cout))
    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

class ResNet8GN(nn.Module):
    def __init__(self, width=16, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, 1, 1, bias=False); self.bn1 = norm(width)
        self.layers = nn.Sequential(Block(width, width, 1), Block(width, 2 * width, 2), Block(2 * width, 4 * width, 2))
        self.linear = nn.Linear(4 * width, classes)
    def forward(self, x):
        out = self.layers(torch.relu(self.bn1(self.conv1(x))))
        return self.linear(out.mean(dim=(2, 3)))

def mlp(): return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))

def measure(make, batch, repeats):
    x = torch.randn(batch, 1, 28, 28); y = torch.arange(batch) % 10
    loss = nn.CrossEntropyLoss()
    m = make(); opt = torch.optim.SGD(m.parameters(), lr=0.0)
    def plain():
        opt.zero_grad(); loss(m(x), y).backward()
    g = GradSampleModule(make())
    dopt = DPOptimizer(torch.optim.SGD(g.parameters(), lr=0.0), noise_multiplier=1.0, max_grad_norm=1.0,
                       expected_batch_size=batch)
    def private():
        dopt.zero_grad(); loss(g(x), y).backward(); dopt.pre_step()  # clip, sum, noise, scale (no update)
    times = [[], []]
    for r in range(repeats + 1):
        for k, f in enumerate((plain, private)):
            t = time.thread_time(); f(); dt = time.thread_time() - t
            if r > 0: times[k].append(dt)
    a, b = statistics.median(times[0]), statistics.median(times[1])
    return {"parameters": sum(p.numel() for p in m.parameters()), "nonPrivateMs": a * 1e3, "privateMs": b * 1e3, "ratio": b / a}

parser = argparse.ArgumentParser()
parser.add_argument("--repeats", type=int, default=7)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--models", default="mlp,resnet8-gn")
args = parser.parse_args()
makers = {"mlp": mlp, "resnet8-gn": ResNet8GN}
for name in args.models.split(","):
    result = {"model": name, **measure(makers[name], args.batch_size, args.repeats),
              "versions": f"opacus {opacus.__version__}, torch {torch.__version__}"}
    print(json.dumps(result), flush=True)
