"""Trainers of what serving loads: the alignment and words scorers, the small CLIP, the MoE text encoder,
and the zoo recipes that train real models. Each trainer takes its data as arguments and writes or returns a
checkpoint (the demo zoo's recipe reads the packaged datasets it names); where the data comes from (the benchmark's meta-training tasks) is zoo2vec.eval's business."""
