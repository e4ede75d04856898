"""Encoding on more than one machine: :func:`encode_with_ray` runs the corpus encoder on a Ray cluster (the
``ray`` extra) and writes the same Parquet shards as :func:`spladekit.encode_corpus`."""

from spladekit.distributed.ray_encoding import encode_with_ray

__all__ = ["encode_with_ray"]
