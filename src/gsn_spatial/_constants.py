"""Element keys, column names and defaults shared across the package (no magic strings elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass


class Keys:
    """Default names of what gsn_spatial reads and writes."""

    LABELS = "gsn_labels"
    TABLE = "gsn_table"
    CELL_ID = "cell_id"  # instance key of the table and the assignment column
    REGION = "region"  # region key of the table
    UNS = "gsn"  # table.uns[UNS] = {"params": ..., "version": ...}
    RNA_DENSITY = "gsn_rna_density"
    RNA_DENSITY_CHANNEL = "rna_density"
    DERIVED_ATTR = "gsn_derived_elements"  # sdata.attrs key: outputs never picked as inputs implicitly
    # sopa's sdata.attrs entries (sopa.constants.SopaAttrs), spelled out so that sopa stays optional. segment writes
    # them for its run; of several images or points elements, the one they name is taken (ROLE_ATTRS).
    SOPA_ATTRS = {
        "boundaries": "boundaries_shapes",
        "transcripts": "transcripts_dataframe",
        "image": "cell_segmentation_image",
    }
    # The labels element of the latest segmentation run (its own entry, as sopa names boundaries, not labels): the
    # one that qc and pl take when the object holds several (a vendor's cell and nucleus labels beside it).
    LATEST_LABELS_ATTR = "gsn_labels_element"
    ROLE_ATTRS = {"images": SOPA_ATTRS["image"], "points": SOPA_ATTRS["transcripts"], "labels": LATEST_LABELS_ATTR}
    # Channel names taken as the nucleus stain when `image_channel` is not given (case-insensitive search):
    # the vendors' morphology images name it "DAPI" (Xenium, CosMx, MERSCOPE); other stains and labs' names too.
    NUCLEUS_STAIN_PATTERN = r"dapi|hoechst|draq|nucle|\bdna\b"
    # Of several images that each have a nucleus-stain channel, the one taken when `image_key` is not given: Xenium
    # slides read by spatialdata-io have both (its `morphology_focus` and `morphology_mip` options), DAPI alike.
    PREFERRED_IMAGES = ("morphology_focus", "morphology_mip")
    # Column names taken as the gene of each transcript when the points declare no `feature_key` (exact match,
    # case-insensitive): the vendors' tables (Xenium feature_name, CosMx target, MERSCOPE gene) and common spellings.
    GENE_COLUMN_NAMES = ("gene", "genes", "gene_name", "feature_name", "target", "feature")
    # Phred-scaled quality of each transcript's gene call (Xenium's transcripts table; spatialdata-io keeps it).
    QV_COLUMN = "qv"


class Defaults:
    TILE_SIZE = 256  # network window of tiled inference (segment default: one pass per block window)
    TILE_OVERLAP = 112  # working px of context tiles lend each other (benchmarks/seams.py); < 128: 128 px tiles valid
    BLOCK_SIZE = 1024  # cells are decoded per block; each cell is owned by the block holding its centre
    # Working px. Core maps within 0.006-0.013 of the whole image's confidence at 96 px (0.06-0.11 at 64, 1e-4 at
    # 128; the network's 99 % reach is 93-116 px), 512 vs 1536 px blocks >= 99.8 % the same cells at 64 and 96
    # (benchmarks/seams.py); 96 costs 1.41 network pixels per output pixel, 128 would cost 1.56.
    BLOCK_HALO = 96
    BATCH_SIZE = 8
    MIN_AREA = 10
    # Expression-aware assignment (core.assign.expression), in um: a transcript may move to a cell up to 2 um away; the
    # spatial prior exp(-d / 2 um) halves every 1.4 um. Chosen on validation data only (benchmarks/reassign.py):
    # on simulator seeds 30000-30002 (2, 2) gained +0.062 transcript accuracy over the mask, the best of the
    # 3 x 3 grid ((2, 1): +0.058, (3, 2): +0.058); on the Xenium crop's training columns it lowered MECR from 0.085
    # to 0.073 (3 um went lower still, but MECR favours any move towards a cell's own profile, so the simulator's
    # truth decides).
    ASSIGNMENT = "expression"
    REASSIGN_RADIUS_UM = 2.0
    REASSIGN_LENGTH_UM = 2.0
    # The RNA map's level and the confidence threshold follow the local transcript density (core.rna.local):
    # the Gaussian-weighted density of occupied 10 um bins within about 40 um (a few cells), bounded to 0.1-10x
    # the slide's. "slide": one level and threshold per slide, as before 2026-12-07.
    RNA_NORMALISATION = "local"
    RNA_LOCAL_SIGMA_UM = 40.0
    RNA_LOCAL_MIN_RATIO = 0.1
    # No pixel reads sparser than this (the brief's lowest density): stray transcripts on glass beside tissue at
    # 0.5 per um^2 gave up to 6 false cells per 0.03 mm^2 with the 0.05 floor of the slide level, 0-2 with this.
    RNA_LOCAL_MIN_DENSITY_UM2 = 0.1
    # Do the transcripts sit on the nuclei (core.metrics.alignment)? Checked on the middle 256 um of the densest
    # block's core, maps smoothed by 3 um, offsets within 30 um: a warning where no offset correlates by 0.2, or
    # where the best is 3 um or more away and the maps as placed correlate at most 0.8 of it. Measured 2026-12-07
    # (one-off runs on whole images, tests/test_alignment.py), the thresholds set after looking at all of them (no
    # held-out set): as placed, the peak is within a pixel of no offset, correlation 0.28-0.98 (the package's
    # simulator at 0.05-2 per um^2, the second at 0.1-2, the Xenium and CosMx crops, sopa's toy); with an axis
    # flipped 0.06-0.22, and where above 0.2 at an offset, so flagged as one; 10 um offsets found within two
    # pixels, as placed at most 0.68 of the correlation there (Xenium: 0.44 against 0.65; sopa's toy with
    # `image_translation`: 10 um in x and y).
    ALIGNMENT_SIGMA_UM = 3.0
    ALIGNMENT_REACH_UM = 30.0
    ALIGNMENT_WINDOW_UM = 256.0
    ALIGNMENT_MIN_OFFSET_UM = 3.0
    ALIGNMENT_MIN_CORRELATION = 0.2
    ALIGNMENT_MAX_RATIO = 0.8
    ALIGNMENT_MIN_TRANSCRIPTS = 200
    # Transcripts whose gene call is below this quality (Keys.QV_COLUMN, where the points have it) still make the RNA
    # map (a molecule is there) and are assigned, but count in obs["n_low_quality_transcripts"], not as their gene:
    # 10x counts only qv >= 20 in its cell-feature matrix (a 1 % chance that the gene is wrong).
    MIN_QV = 20.0
    # Control probes (core.rna.controls), matched at the start of a gene name, case-insensitive: Xenium's
    # NegControlProbe_ / NegControlCodeword_ / UnassignedCodeword_ / DeprecatedCodeword_ / BLANK_ / Intergenic_Region_
    # / antisense_, CosMx's NegPrb / SystemControl / FalseCode, MERSCOPE's Blank-. Left out of the RNA map and of the
    # table's genes (counted in obs["n_control_transcripts"]), as sopa and proseg leave them out of their counts.
    CONTROL_GENES = (
        r"negcontrol|negprb|unassignedcodeword|deprecatedcodeword|blank[_-]|intergenic|antisense|systemcontrol"
        r"|falsecode"
    )


@dataclass(frozen=True)
class RunKeys:
    """The elements one segmentation run writes, all named from its labels key (see :func:`run_keys`)."""

    labels: str
    table: str
    boundaries: str
    assignment: str

    def as_dict(self) -> dict[str, str]:
        return {
            "labels": self.labels,
            "table": self.table,
            "boundaries": self.boundaries,
            "assignment": self.assignment,
        }


def run_keys(labels_key: str) -> RunKeys:
    """The one key scheme: every element of a run derives from ``labels_key``.

    A trailing ``_labels`` is the run's name and is replaced, so the default
    ``gsn_labels`` gives ``gsn_table``, ``gsn_boundaries`` and
    ``gsn_transcripts``; any other key is the run's name itself (``run_b`` ->
    ``run_b_table``, ``run_b_boundaries``, ``run_b_transcripts``). Runs with
    different labels keys therefore never collide.

    Examples
    --------
    >>> run_keys("gsn_labels").as_dict()
    {'labels': 'gsn_labels', 'table': 'gsn_table', 'boundaries': 'gsn_boundaries', 'assignment': 'gsn_transcripts'}
    >>> run_keys("run_b").table
    'run_b_table'
    """
    if not isinstance(labels_key, str) or not labels_key:
        raise TypeError(f"`labels_key_added` must be a non-empty string, got {labels_key!r}.")
    stem = labels_key[: -len("_labels")] if labels_key.endswith("_labels") and len(labels_key) > 7 else labels_key
    return RunKeys(labels_key, f"{stem}_table", f"{stem}_boundaries", f"{stem}_transcripts")


def round_labels_key(refined_labels_key: str, round_: int) -> str:
    """The labels element of one round's refined labels written by ``gsn.tl.train(refined_labels_key=)``.

    Examples
    --------
    >>> round_labels_key("refined", 2)
    'refined_round2'
    """
    return f"{refined_labels_key}_round{round_}"


def rescaled_image_key(image_key: str, factor: float) -> str:
    """The default key of ``gsn.pp.rescale_image``'s output.

    Examples
    --------
    >>> rescaled_image_key("dapi", 0.5)
    'dapi_x0.5'
    """
    return f"{image_key}_x{factor:g}"
