// A script with a type error on line 4 (a string where a float is expected).
open AdvAA.Dsl

let lr: Schedule = Schedule.constant "0.1"
