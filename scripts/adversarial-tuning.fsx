// Issue 28, step 1: choose the budget-aware adversarial method's settings on the *validation* split
// (2 paired seeds) of the studies' 2k CIFAR-10 setting (scripts/Setting2k.fsx: 2,000 images, batch 64,
// so 31 steps an epoch, 60 epochs, M = 4). Every learned arm starts from the same base — the paired
// per-sub-policy reward, heads at zero with AutoAugment's CIFAR-10 marginals as the prior, at the
// strength of the strength check's best mild random arm on validation (magnitude_scale 0.5,
// policy_probability 0.75) — and changes one setting: the teacher's weight λ (1: TeachAugment's
// target − teacher), the KL weight (0.5, 0.05), the controller's learning rate, K (updates per epoch). "frozen-prior" is the base with
// controller_lr = 0: the control that shows whether learning matters. The test column is not used.
//
//   advaa run scripts/adversarial-tuning.fsx /data/cifar10 --out runs/adversarial-tuning   (--resume continues it)
#load "Setting2k.fsx"

open AdvAA.Dsl
open AdvAA.Core.Methods

let common = Setting2k.common "advaa run scripts/adversarial-tuning.fsx /data/cifar10"

let learned name (changes: MethodSpec -> MethodSpec) =
    { common with
        Name = name
        Method =
            Method.adversarial
            |> Method.instances (Schedule.constant 4.0)
            |> Method.set "magnitude_scale" (Schedule.constant 0.5)
            |> Method.set "policy_probability" (Schedule.constant 0.75)
            |> Method.setText "reward" "paired"
            |> Method.setText "prior" "autoaugment"
            |> Method.set "updates_per_epoch" 31
            |> Method.set "controller_lr" 0.001
            |> changes }

let study =
    { Name = "adversarial-tuning"
      Seeds = [ 1L; 2L ]
      Arms =
        [ learned "learned-k31-kl0.5" (Method.set "kl_weight" 0.5)
          learned "learned-k31-kl0.05" (Method.set "kl_weight" 0.05)
          learned "frozen-prior" (Method.set "controller_lr" 0.0)
          learned "learned-k31-teacher1" (Method.set "teacher_weight" 1.0)
          learned "learned-k31" id
          learned "learned-k31-lr0.0003" (Method.set "controller_lr" 0.0003)
          learned "learned-k4" (Method.set "updates_per_epoch" 4) ] }

Experiment.mainStudy study
