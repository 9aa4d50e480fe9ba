# nanoGPT config exported by tune-gpt: best trial a0ed0805 of search 'bb-seed-1'
# (best val_loss 2.0823).
# Use it from a nanoGPT checkout:  python train.py config/<this file>.py

out_dir = 'out-bb-seed-1'
eval_interval = 163
eval_iters = 20
log_interval = 100
always_save_checkpoint = False  # save only when val_loss improves
init_from = 'scratch'
wandb_log = False
wandb_project = 'bb-seed-1'
wandb_run_name = 'a0ed0805'

# tune-gpt trained on the text file /work/shared/data/shakespeare_char/input.txt; nanoGPT reads data/input/train.bin
# and val.bin: prepare them like data/shakespeare_char/prepare.py does.
dataset = 'input'
# nanoGPT's gradient_accumulation_steps is the total over all DDP ranks (train.py
# divides it by the number of GPUs); on one GPU, as here, it is the per-GPU value.
gradient_accumulation_steps = 1
batch_size = 12
block_size = 128  # tokens/iter = 1,536

n_layer = 4
n_head = 4
n_embd = 192
dropout = 0.0
bias = False

learning_rate = 0.001
max_iters = 1303
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.99
grad_clip = 1.0
decay_lr = True
warmup_iters = 100
lr_decay_iters = 1303
min_lr = 0.0001

device = 'cpu'
dtype = 'float32'
compile = False
# tune-gpt seed was 1; nanoGPT always seeds 1337 (+ rank).
