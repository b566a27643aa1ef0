// Step 0 of the adversarial-budget issue: is the gap between random policies and RandAugment /
// AutoAugment at M = 4 a matter of augmentation *strength* rather than of learning? Random policies
// (M = 4, the paper's space, Cutout 16) at milder strength — magnitude_scale and policy_probability
// at 0.5 and 0.75 — next to random at full strength and RandAugment M = 4, all on this machine and
// precision, 2 paired seeds, on the studies' 2k CIFAR-10 setting (scripts/Setting2k.fsx). Settings are
// compared on the *validation* split (summary.md's "validation" column); the test column is not used
// to choose.
//
//   STUDY=scripts/strength-study.fsx scripts/study.sh [CIFAR-10 folder] [study folder]
//   advaa run scripts/strength-study.fsx /data/cifar10 --out runs/strength   (--resume continues it)
#load "Setting2k.fsx"

open AdvAA.Dsl

let common = Setting2k.common "advaa run scripts/strength-study.fsx /data/cifar10"

let m4 = Schedule.constant 4.0

let mild magnitude probability =
    { common with
        Name = sprintf "random-ms%g-pp%g" magnitude probability
        Method =
            Method.random
            |> Method.instances m4
            |> Method.set "magnitude_scale" (Schedule.constant magnitude)
            |> Method.set "policy_probability" (Schedule.constant probability) }

let study =
    { Name = "strength-check"
      Seeds = [ 1L; 2L ]
      Arms =
        [ mild 0.5 0.5
          mild 0.5 0.75
          mild 0.75 0.5
          mild 0.75 0.75
          { common with Name = "random"; Method = Method.random |> Method.instances m4 }
          { common with Name = "randaugment-m4"; Method = Method.named "randaugment" |> Method.instances m4 } ] }

Experiment.mainStudy study
