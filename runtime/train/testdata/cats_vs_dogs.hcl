# The two-class image recipe from the product brief, as a Hadron job file.
name             = "cats-vs-dogs"
seed             = 1
epochs           = 15
batch_size       = 20
validation_split = 0.2
loss             = "binary_crossentropy"
metrics          = ["accuracy"]

optimizer {
  type          = "adam"
  learning_rate = 0.001
}

dataset {
  format  = "image_folder"
  train   = "cats_and_dogs/train"
  test    = "cats_and_dogs/test"
  rescale = 1 / 255
}

model {
  layer "Conv2D" {
    filters     = 32
    kernel_size = [3, 3]
    activation  = "relu"
    input_shape = [150, 150, 3]
  }
  layer "MaxPooling2D" {
    pool_size = [2, 2]
  }
  layer "Conv2D" {
    filters     = 64
    kernel_size = [3, 3]
    activation  = "relu"
  }
  layer "MaxPooling2D" {
    pool_size = [2, 2]
  }
  layer "Conv2D" {
    filters     = 128
    kernel_size = [3, 3]
    activation  = "relu"
  }
  layer "MaxPooling2D" {
    pool_size = [2, 2]
  }
  layer "Flatten" {}
  layer "Dense" {
    units      = 512
    activation = "relu"
  }
  layer "Dense" {
    units      = 1
    activation = "sigmoid"
  }
}
