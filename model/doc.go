// Package model is fedclaims' claims foundation model: a BERT-style encoder
// (token, position, age and segment embeddings, and with Config.TimeBuckets
// log-bucketed embeddings of the time before the cutoff and the gap since the
// previous visit; pre-LayerNorm blocks of masked
// multi-head self-attention and a 4x GELU MLP; a final LayerNorm), pretrained with
// masked-language modelling through a decoder tied to the token embedding, and
// binary task heads on a pooled representation.
//
// The model is built on gorgonia: parameters are exposed as gorgonia tensors
// (Model.Tensor) over one flat float32 vector, matrix products go through the
// BLAS that gorgonia uses (its cgo blase package over OpenBLAS with the openblas
// build tag, gonum's pure-Go BLAS otherwise), and the other ops — LayerNorm,
// GELU, masked softmax attention, embedding lookup, masked softmax cross-entropy —
// are hand-written fused forward and backward kernels, each checked against finite
// differences. Hand-writing them keeps a training step free of per-op graph
// overhead and allocation, which is what makes CPU training fast enough.
//
// The flat vector's order (see Config.layout) is the order of Flatten and of the
// safetensors checkpoints; federated rounds add and average these vectors.
package model
