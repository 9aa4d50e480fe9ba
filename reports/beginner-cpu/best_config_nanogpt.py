# nanoGPT config exported by tune-gpt: best trial a21b92d5 of search 'beginner-cpu'
# (best val_loss 1.6886).
# Use it from a nanoGPT checkout:  python train.py config/<this file>.py

out_dir = 'out-beginner-cpu'
eval_interval = 326
eval_iters = 20
log_interval = 100
always_save_checkpoint = False  # save only when val_loss improves
init_from = 'scratch'
wandb_log = False
wandb_project = 'beginner-cpu'
wandb_run_name = 'a21b92d5'

# tune-gpt trained on the text file /work/shared/data/shakespeare_char/input.txt; nanoGPT reads data/input/train.bin
# and val.bin: prepare them like data/shakespeare_char/prepare.py does.
dataset = 'input'
# nanoGPT's gradient_accumulation_steps is the total over all DDP ranks (train.py
# divides it by the number of GPUs); on one GPU, as here, it is the per-GPU value.
gradient_accumulation_steps = 1
batch_size = 12
block_size = 64  # tokens/iter = 768

n_layer = 4
n_head = 4
n_embd = 192
dropout = 0.0
bias = False

learning_rate = 0.00174673665506
max_iters = 2605
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.99
grad_clip = 1.0
decay_lr = True
warmup_iters = 100
lr_decay_iters = 2605
min_lr = 0.000174673665506

device = 'cpu'
dtype = 'float32'
compile = False
# tune-gpt seed was 1337; nanoGPT always seeds 1337 (+ rank).
