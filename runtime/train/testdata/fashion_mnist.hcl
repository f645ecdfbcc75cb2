# The Fashion-MNIST benchmark recipe (make bench-train runs it on all data).
name       = "fashion-mnist"
seed       = 42
threads    = 2
epochs     = 1
batch_size = 64
loss       = "sparse_categorical_crossentropy"

optimizer {
  type          = "adam"
  learning_rate = 0.001
}

dataset {
  format       = "idx"
  train_images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
  train_labels = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"
  test_images  = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
  test_labels  = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
  rescale      = 1 / 255
}

model {
  input_shape = [28, 28, 1]
  layer "conv2d" {
    filters     = 32
    kernel_size = [3, 3]
    activation  = "relu"
  }
  layer "max_pooling2d" {}
  layer "conv2d" {
    filters     = 64
    kernel_size = [3, 3]
    activation  = "relu"
  }
  layer "max_pooling2d" {}
  layer "conv2d" {
    filters     = 128
    kernel_size = [3, 3]
    activation  = "relu"
  }
  layer "max_pooling2d" {}
  layer "flatten" {}
  layer "dense" {
    units      = 512
    activation = "relu"
  }
  layer "dense" {
    units = 10
  }
}
