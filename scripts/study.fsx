// The paper's claim at CPU scale (scripts/study.sh runs this): a small-data setting where a model
// overfits, so augmentation can matter. CIFAR-10, a class-balanced 2,000-image training subset, a
// 1,000-image validation split from the remaining training images, the full 10,000 test images
// (evaluated every 5 epochs and at the end), the small model, 60 epochs for every method, M = 4.
//
//   scripts/study.sh [CIFAR-10 folder] [study folder]      (default: $ADVAA_CIFAR10_DIR, runs/study)
//   advaa run scripts/study.fsx /data/cifar10 --out runs/study        (--resume runs/study continues it)
//
// Arms are experiments; a study runs each once per seed and writes summary.md and summary.json
// (mean ± sd over seeds), test-curves.png and controller-movement.png. Declare your own grid the
// same way: a list of experiments and the seeds.
#load "Setting2k.fsx"

open AdvAA.Dsl

let common = Setting2k.common "scripts/study.sh /data/cifar10"

let m4 = Schedule.constant 4.0

let study =
    { Name = "cifar10-2k"
      Seeds = [ 1L; 2L ]
      Arms =
        [ { common with Name = "baseline"; Method = Method.baseline }
          { common with Name = "fixed"; Method = Method.fixedCopies |> Method.instances m4 }
          { common with Name = "random"; Method = Method.random |> Method.instances m4 }
          { common with Name = "adversarial"; Method = Method.adversarial |> Method.instances m4 }
          // The paper's controller takes 200 Adam steps at 0.00035 in 200 epochs; 60 epochs give it 60.
          // A budget-aware variant scales its learning rate by 200/60 (the same total movement).
          { common with
              Name = "adversarial-lr-x3.3"
              Method = Method.adversarial |> Method.instances m4 |> Method.set "controller_lr" (0.00035 * 200.0 / 60.0) }
          { common with Name = "trivialaugment"; Method = Method.trivialAugment true }
          { common with Name = "trivialaugment-m4"; Method = Method.trivialAugment true |> Method.instances m4 }
          { common with Name = "randaugment"; Method = Method.named "randaugment" }
          { common with Name = "randaugment-m4"; Method = Method.named "randaugment" |> Method.instances m4 }
          { common with Name = "autoaugment"; Method = Method.autoAugment }
          { common with Name = "autoaugment-m4"; Method = Method.autoAugment |> Method.instances m4 }
          { common with Name = "uncertainty"; Method = Method.uncertainty 4 1 }
          // M = 4 kept copies per image, as the other M-arms train on, from twice as many candidates.
          { common with Name = "uncertainty-m4"; Method = Method.uncertainty 8 4 } ] }

Experiment.mainStudy study
