// A script whose top-level code throws a DSL validation error on line 6.
open AdvAA.Dsl

let warmupEpochs = 5.0
let total = 200.0
let lr = Schedule.warmup warmupEpochs (Schedule.cosine 0.1 0.0 (warmupEpochs - total))
