# The Opacus peer of `powersgd bench dp` for the MLP (784-256-10, batch 32, 1 thread): the
# non-private step (forward + backward) and the DP step up to the update (per-sample gradients,
# clipping, sum, noise, scaling: DPOptimizer.pre_step), in thread CPU time. Needs torch and opacus in the Python used:
#   ~/.venvs/peers/bin/pip install --no-deps opacus opt_einsum scipy
# Usage: ~/.venvs/peers/bin/python scripts/opacus-dp-step.py
import time, warnings, torch, statistics
warnings.filterwarnings("ignore")
torch.set_num_threads(1)
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
def mlp(): return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784,256), torch.nn.ReLU(), torch.nn.Linear(256,10))
x = torch.randn(32,1,28,28); y = torch.arange(32) % 10
loss = torch.nn.CrossEntropyLoss()
m = mlp(); opt = torch.optim.SGD(m.parameters(), lr=0.0)
def plain():
    opt.zero_grad(); loss(m(x), y).backward()
g = GradSampleModule(mlp()); dopt = DPOptimizer(torch.optim.SGD(g.parameters(), lr=0.0), noise_multiplier=1.0, max_grad_norm=1.0, expected_batch_size=32)
def private():
    dopt.zero_grad(); loss(g(x), y).backward(); dopt.pre_step()  # clip, sum, noise, scale (no parameter update)
def med(f, n=31):
    f(); ts=[]
    for _ in range(n):
        t=time.thread_time(); f(); ts.append(time.thread_time()-t)
    return statistics.median(ts)
a=[];b=[]
for _ in range(3): a.append(med(plain)); b.append(med(private))
print(f"opacus {__import__('opacus').__version__} torch {torch.__version__}: non-private {min(a)*1e3:.3f} ms, private {min(b)*1e3:.3f} ms, ratio {min(b)/min(a):.2f}")
