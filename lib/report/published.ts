/**
 * The published numbers of the original function-matching work, for the side-by-side table.
 *
 * Why this module exists: a user judges our student against what the recipe is known to reach, so the
 * reference numbers and the conditions they were obtained under are kept in one place, with their
 * source. They come from the README of sayakpaul/FunMatch-Distillation (the TF2 re-implementation of
 * Beyer et al. 2021, BiT-M R101x3 teacher → BiT-R50x1 student from scratch, 128 px); see
 * research/recipes.md §1.2–1.3. Paper Table 4 itself could not be retrieved, so nothing here claims it.
 *
 * @module
 */

/** One published student result. */
export interface PublishedStudent {
  /** Top-1 test accuracy, fraction. */
  top1: number;
  /** Distillation length in epochs over the training set. */
  epochs: number;
  /** Student architecture when it differs from {@link Published.student_arch}. */
  arch?: string;
}

/** Published reference numbers for one dataset. */
export interface Published {
  /** Human name of the dataset, e.g. "Oxford-IIIT Pet". */
  name: string;
  /** Where the numbers come from. */
  source: string;
  /** Teacher top-1 test accuracy, fraction. */
  teacher_top1: number;
  students: PublishedStudent[];
  teacher_arch?: string;
  student_arch?: string;
  /** Input resolution of both models, if published. */
  resolution?: number;
  /** Training images, if published. */
  train_images?: number;
  /** Global batch size, if published. */
  batch_size?: number;
  /** Anything else a reader must know to compare. */
  note?: string;
}

const SOURCE = "sayakpaul/FunMatch-Distillation README (TF2 re-implementation of Beyer et al. 2021)";

const TABLE: Record<string, Published> = {
  pets: {
    name: "Oxford-IIIT Pet (37 classes)",
    source: SOURCE,
    teacher_top1: 0.9092,
    students: [{ top1: 0.813, epochs: 300 }, { top1: 0.86, epochs: 1000 }],
    teacher_arch: "BiT-M R101x3 (ImageNet-21k pre-trained)",
    student_arch: "BiT-R50x1 (from scratch)",
    resolution: 128,
    train_images: 3312,
    batch_size: 512,
  },
  flowers102: {
    name: "Oxford Flowers-102",
    source: SOURCE,
    teacher_top1: 0.9818,
    students: [{ top1: 0.8102, epochs: 1000 }],
    teacher_arch: "BiT-M R101x3 (ImageNet-21k pre-trained)",
    student_arch: "BiT-R50x1 (from scratch)",
    note: "the repository gives only the epoch count for this run; its other settings are not published",
  },
  food101: {
    name: "Food-101",
    source: SOURCE,
    teacher_top1: 0.8552,
    students: [{ top1: 0.7606, epochs: 100 }],
    teacher_arch: "BiT-M R101x3 (ImageNet-21k pre-trained)",
    student_arch: "BiT-R50x1 (from scratch)",
    note: "the repository gives only the epoch count for this run; its other settings are not published",
  },
};

/**
 * The published numbers for a dataset name as used in `pipeline/datasets/<name>.yaml` (`pets37`,
 * `pets37-sample`, `oxford_iiit_pet`, `flowers102`, `food101`, …), or null when there are none
 * (e.g. `cifar10`: the FunMatch work published no CIFAR-10 number).
 */
export function publishedFor(dataset: string): Published | null {
  const d = dataset.toLowerCase();
  if (/^(pets?|oxford[_-]?iiit[_-]?pet)/.test(d)) return TABLE.pets;
  if (/^(flowers|oxford[_-]?flowers)/.test(d)) return TABLE.flowers102;
  if (/^food/.test(d)) return TABLE.food101;
  return null;
}
