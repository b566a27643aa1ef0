namespace AdvAA.Dsl
