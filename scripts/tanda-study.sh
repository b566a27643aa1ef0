#!/usr/bin/env bash
# The TANDA benchmark (scripts/tanda-study.fsx): baseline, random TF sequences and TANDA (mean-field,
# LSTM) on 5,000 CIFAR-10 training images, 2 seeds; resumes after an interruption.
# usage: scripts/tanda-study.sh [CIFAR-10 folder] [study folder]   (default: $ADVAA_CIFAR10_DIR, runs/tanda-study)
cd "$(dirname "$0")/.."
STUDY=scripts/tanda-study.fsx exec scripts/study.sh "${1:-${ADVAA_CIFAR10_DIR:-../shared/data/cifar10}}" "${2:-runs/tanda-study}"
