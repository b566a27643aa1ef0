/// The seed's Part III, runnable: small, seeded experiments behind the theory of augmentation that
/// examples/theory/*.fsx run at full size and tests run in seconds.
///  - Linear: Wu et al. (ICML 2020), an over-parameterised linear regression whose training data lie
///    in a low-dimensional subspace.
///  - Kernel: Dao et al. (ICML 2019), augmentation as a kernel, and its first- and second-order
///    approximations (averaged features, plus the variance term).
///  - Stability: same-class mixup lowers the variance of a model's predictions over retraining.
module AdvAA.Dsl.Theory

open System
open TorchSharp
open AdvAA.Core.Augment
open AdvAA.Core.Data

let private fail message = raise (DslException message)

/// Wu et al. (2020), §3: ridge regression y = x·β* + ε in d dimensions on n points that lie in a
/// k-dimensional subspace S. Label-invariant transformations add x + δ with δ ⊥ β* (the label does
/// not change); outside S they add information the data lacks, inside S none; mixup keeps the data
/// in S and acts as a stronger ridge penalty.
module Linear =
    type Setting =
        { Dimension: int
          Subspace: int
          Samples: int
          /// Standard deviation of the label noise.
          Noise: float
          Ridge: float
          /// Augmented copies per training point.
          Copies: int
          Seed: int64 }

    /// The defaults of examples/theory/linear-model.fsx.
    let defaults =
        { Dimension = 60; Subspace = 10; Samples = 40; Noise = 0.5; Ridge = 10.0; Copies = 4; Seed = 1L }

    type Result =
        { /// ||β̂ − β*||², the excess test error for isotropic test inputs.
          NoAugmentation: float
          OutsideSpan: float
          InsideSpan: float
          Mixup: float
          /// ||β̂|| without augmentation and with mixup.
          Norm: float
          MixupNorm: float
          /// The ridge penalty whose estimator (without augmentation) is closest to mixup's, and how close (relative distance).
          MixupRidge: float
          MixupRidgeDistance: float
          /// Augmenting with T1 and T2, then with their composition as well: a pair where the composition lowers the error...
          HelpingPair: float * float
          /// ...and one where it raises it.
          HurtingPair: float * float }

    let private check (s: Setting) =
        if s.Subspace < 1 || s.Subspace >= s.Dimension then fail (sprintf "Linear: Subspace = %d: expected 1..Dimension-1 (%d)" s.Subspace (s.Dimension - 1))
        if s.Samples < 2 then fail (sprintf "Linear: Samples = %d: expected at least 2" s.Samples)
        if s.Ridge <= 0.0 || s.Copies < 1 then fail "Linear: Ridge must be above 0 and Copies at least 1"

    let private sc (v: float) = v.ToScalar()

    /// β̂ = (XᵀX + λI)⁻¹ Xᵀy.
    let ridge (lambda: float) (x: torch.Tensor) (y: torch.Tensor) : torch.Tensor =
        let d = x.shape[1]
        torch.linalg.solve(x.t().mm(x).add(torch.eye(d, dtype = torch.ScalarType.Float64).mul(sc lambda)), x.t().mv(y))

    let run (s: Setting) : Result =
        check s
        use scope = torch.NewDisposeScope()
        use g = new torch.Generator(uint64 s.Seed)
        let d, k, n = int64 s.Dimension, int64 s.Subspace, int64 s.Samples
        let normal (shape: int64[]) : torch.Tensor = torch.randn(shape, dtype = torch.ScalarType.Float64, generator = g)
        let unit (v: torch.Tensor) : torch.Tensor = v.div(v.norm())
        let struct (basis: torch.Tensor, _) = torch.linalg.qr(normal [| d; k |]) // columns span S
        let projectS (v: torch.Tensor) : torch.Tensor = basis.mv(basis.t().mv(v))
        let beta = unit (normal [| d |])
        let x = (normal [| n; k |]).mm(basis.t())
        let y = x.mv(beta).add((normal [| n |]).mul(sc s.Noise))
        let error (b: torch.Tensor) = b.sub(beta).square().sum().item<float>()
        let fit (xs: torch.Tensor list) (ys: torch.Tensor list) = ridge s.Ridge (torch.cat(Array.ofList xs, 0L)) (torch.cat(Array.ofList ys, 0L))
        let copies = int64 s.Copies
        let repeatY = y.repeat(copies)
        /// Rows δ without their component along the unit vector u: δ − (δ·u)u.
        let without (u: torch.Tensor) (delta: torch.Tensor) : torch.Tensor = delta.sub(delta.mv(u).outer(u))
        // Outside S: δ ~ N(0, I) without its β* component; inside S: δ ∈ S without its β* component.
        let outside = without beta (normal [| n * copies; d |])
        let inS = without (unit (projectS beta)) ((normal [| n * copies; k |]).mm(basis.t()))
        let repeated = x.repeat(copies, 1L)
        let baseline = ridge s.Ridge x y
        let mixupFit =
            // Many mixed pairs: close to mixup's expected objective.
            let m = n * 500L
            let i = torch.randint(n, [| m |], generator = g)
            let j = torch.randint(n, [| m |], generator = g)
            let l = torch.rand([| m |], dtype = torch.ScalarType.Float64, generator = g)
            let rest = l.neg().add(sc 1.0)
            let xm = x.index_select(0L, i).mul(l.view(-1L, 1L)).add(x.index_select(0L, j).mul(rest.view(-1L, 1L)))
            let ym = y.index_select(0L, i).mul(l).add(y.index_select(0L, j).mul(rest))
            // As many mixed points as training points in weight: the loss is a mean over the data.
            ridge (s.Ridge * float m / float n) xm ym
        // The ridge penalty closest to mixup's estimator, on a logarithmic grid.
        let grid = [ for e in -2.0 .. 0.05 .. 3.0 -> s.Ridge * 10.0 ** e ]
        let distance (b: torch.Tensor) = b.sub(mixupFit).norm().item<float>() / mixupFit.norm().item<float>()
        let bestRidge = grid |> List.minBy (fun l -> distance (ridge l x y))
        // Compositions: T(x) = x + v (wᵀx) with v ⊥ β* (label-invariant); T1∘T2 is label-invariant too.
        let transform (v: torch.Tensor) (w: torch.Tensor) (xs: torch.Tensor) : torch.Tensor = xs.add(xs.mv(w).outer(v))
        /// The error augmenting with T1 and T2, then also with `copies` copies of T1∘T2.
        let pairError (t1: torch.Tensor -> torch.Tensor) (t2: torch.Tensor -> torch.Tensor) (t12: torch.Tensor -> torch.Tensor) =
            let composed = t12 x
            error (fit [ x; t1 x; t2 x ] [ y; y; y ]),
            error (fit ([ x; t1 x; t2 x ] @ List.replicate s.Copies composed) ([ y; y; y ] @ List.replicate s.Copies y))
        // Helping: T2 moves the data along v2; T1 moves it along v1 and maps z (the part of v2
        // outside S, which no training point has) onto u, so T1 and T2 alone never reach u but
        // T1∘T2 does: information neither gives. Every direction is orthogonal to β*, so each map
        // keeps the label.
        let labelInvariant () = unit ((without beta ((normal [| d |]).view(1L, -1L))).view(-1L))
        let v1, v2 = labelInvariant (), labelInvariant ()
        // u: the label-invariant direction that carries what the data augmented by T1 and T2
        // (spanning S, v1 and v2) misses of β*.
        let struct (seen: torch.Tensor, _) = torch.linalg.qr(torch.cat([| basis; v1.view(-1L, 1L); v2.view(-1L, 1L) |], 1L))
        let known = seen.mv(seen.t().mv(beta))
        let u = unit (known.sub(beta.mul(known.dot(beta))))
        let z = unit (v2.sub(projectS v2))
        let w1, w2 = unit (projectS (normal [| d |])), unit (projectS (normal [| d |]))
        let t1 (xs: torch.Tensor) : torch.Tensor = xs.add(xs.mv(w1).outer(v1)).add(xs.mv(z).outer(u))
        let t2 = transform v2 w2
        let helping = pairError t1 t2 (t2 >> t1)
        // Hurting: T2 undoes T1 (both label-invariant), so their composition only repeats the
        // training points with their label noise: more weight on the noise, no new direction.
        let w = unit (projectS (normal [| d |]))
        let v = unit (v1.sub(w.mul(v1.dot(w)))) // ⊥ w, so (I − vwᵀ) inverts (I + vwᵀ)
        let undo (xs: torch.Tensor) : torch.Tensor = xs.sub(xs.mv(w).outer(v))
        let hurting = pairError (transform v w) undo id
        { NoAugmentation = error baseline
          OutsideSpan = error (fit [ x; repeated.add(outside) ] [ y; repeatY ])
          InsideSpan = error (fit [ x; repeated.add(inS) ] [ y; repeatY ])
          Mixup = error mixupFit
          Norm = baseline.norm().item<float>()
          MixupNorm = mixupFit.norm().item<float>()
          MixupRidge = bestRidge
          MixupRidgeDistance = distance (ridge bestRidge x y)
          HelpingPair = helping
          HurtingPair = hurting }
