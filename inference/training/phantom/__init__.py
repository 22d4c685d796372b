"""Synthetic chest-CT phantoms: the built-in sample study and the training/evaluation data of the built-in models.

``generate_phantom(seed)`` returns a chest CT in HU with its label map and nodule list, in memory and without
writing DICOM, so that training can draw hundreds of them. Everything is numpy; no Qt, torch or viewer imports.

What is modelled (all sizes in mm, randomised per seed):

* body wall: skin, subcutaneous fat, muscle (pectoral, paraspinal and scapular groups thicker), a patient table;
* bone: twelve pairs of ribs with cortical shell and marrow, costal cartilage, sternum, clavicles, scapulae, and a
  thoracic spine with vertebral bodies, discs, canal, pedicles/lamina, spinous and transverse processes;
* mediastinum: fat, heart (myocardium and chambers) and left atrium, aorta with arch and its three branches,
  superior vena cava and brachiocephalic veins, pulmonary trunk with left and right arteries, oesophagus;
* lungs (left/right) bounded by the ribs, the mediastinum, domed apices and the two diaphragm domes (breathing
  moves them), with a gravity gradient and smooth texture; upper abdomen (liver, stomach with gas, spleen) below;
* trachea, carina and main bronchi continuing into a bronchial tree, pulmonary arteries and veins as space-filling
  trees (Murray's law radii, tapering to sub-voxel size), rendered with partial-volume occupancy;
* 0-6 nodules of 3-40 mm (log-uniform, so masses of 30-40 mm occur): solid (lobulated, some spiculated),
  part-solid (ground glass with a solid core), pure ground glass and calcified (benign, small); free,
  juxtapleural (clipped flat by the pleura), juxtavascular (against a vessel) or perifissural (lentiform, on a
  fissure sheet; the phantom has no lobar fissures, so the sheet is local);
* hard negatives that readers and detectors mistake for nodules: vessel bifurcations (the trees), linear scars and
  plate-like (subsegmental) atelectasis, labelled as lung;
* acquisition: slice-profile and in-plane blur, correlated noise with a CT-like (ramp x apodisation) noise power
  spectrum, optional contrast enhancement, optional reconstruction circle; dose (noise 6-70 HU), kernel (soft to
  sharp) and habitus (subcutaneous fat) are widened by a separate protocol stream (not for the demo seed).

Coordinates: arrays are ``(z, y, x)`` = (slice, row, column). Rows run to patient posterior (+y LPS), columns to
patient left (+x LPS), slices to superior (+z LPS); ``origin_lps`` is the LPS position of voxel (0, 0, 0), so
``LPS = origin_lps + (x * sx, y * sy, z * sz)`` (see ``Phantom.affine``).

The package, in the order a phantom is made (``generate``):

* ``anatomy``: ``Anatomy``, the sampled body, bones, mediastinum and lungs as functions of world mm (and the lung
  rule), plus the materials and v1 acquisition parameters;
* ``trees``: the pulmonary arteries, veins and bronchi grown into each lung;
* ``render``: anatomy and trees onto the voxel grid, a noiseless HU image and its label map;
* ``nodules``: the nodule plan, placement and drawing; ``mimics``: the hard negatives;
* ``acquisition``: blur, noise and the protocol that sets them;
* ``truth``: ``Phantom``, ``Nodule``, the label table, the version, ``save_ground_truth``;
* ``geometry``: vector helpers and tube lists (tapered capsules), shared by all of them;
* ``followup``: ``generate_followup(seed, days)``, the same patient later (nodules grown by known doubling times,
  one new, one resolved, the patient moved), drawn by the same code from the same random states.
"""
from inference.training.phantom.generate import DEFAULT_SHAPE, DEFAULT_SPACING, generate_phantom
from inference.training.phantom.nodules import DEMO_SEED
from inference.training.phantom.truth import (
                                              GENERATOR_REVISION,
                                              LABEL_DESCRIPTIONS,
                                              LABELS,
                                              PHANTOM_VERSION,
                                              Nodule,
                                              Phantom,
                                              save_ground_truth,
)

__all__ = ["DEFAULT_SHAPE", "DEFAULT_SPACING", "DEMO_SEED", "GENERATOR_REVISION", "LABELS", "LABEL_DESCRIPTIONS",
           "PHANTOM_VERSION", "Nodule", "Phantom", "generate_phantom", "save_ground_truth"]
