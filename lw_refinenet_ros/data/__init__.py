"""Datasets: readers for VOC / folder / Cityscapes layouts and the synthetic conveyor generator."""
