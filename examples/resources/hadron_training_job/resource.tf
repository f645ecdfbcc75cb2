# The built-in engine: a Keras-style CNN on Fashion-MNIST, on one node.
resource "hadron_training_job" "cnn" {
  name         = "fashion-cnn"
  instance_ids = [hadron_gpu_instance.a.id]

  engine = {
    input_shape = [28, 28, 1]
    layers = [
      { type = "conv2d", filters = 32, kernel_size = [3, 3], activation = "relu" },
      { type = "max_pooling2d", pool_size = [2, 2] },
      { type = "flatten" },
      { type = "dense", units = 128, activation = "relu" },
      { type = "dense", units = 10 },
    ]
    loss             = "sparse_categorical_crossentropy"
    optimizer        = { type = "adam", learning_rate = 0.001 }
    epochs           = 3
    batch_size       = 64
    validation_split = 0.1
    seed             = 42
  }

  dataset = {
    format       = "idx"
    location     = "upload" # files on this machine, uploaded to the node
    train_images = "data/train-images-idx3-ubyte.gz"
    train_labels = "data/train-labels-idx1-ubyte.gz"
    test_images  = "data/t10k-images-idx3-ubyte.gz"
    test_labels  = "data/t10k-labels-idx1-ubyte.gz"
    rescale      = 1 / 255
  }

  timeouts = {
    create = "2h"
  }
}

# Your own program on two nodes, with MASTER_ADDR, MASTER_PORT, NODE_RANK,
# NNODES and WORLD_SIZE set as torchrun expects.
resource "hadron_training_job" "ddp" {
  name         = "ddp"
  instance_ids = [hadron_gpu_instance.a.id, hadron_gpu_instance.b.id]

  command = {
    argv       = ["torchrun", "--nproc-per-node=1", "train.py"]
    upload_dir = "${path.module}/src"
    env        = { EPOCHS = "3" }
  }
}
