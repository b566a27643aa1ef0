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

/// The training images of two classes as float64 features: random Fourier features of the
/// normalised pixels, φ(v) = sqrt(2/D) cos(Wv + b) with W ~ N(0, 1/σ²), which approximate an RBF
/// kernel on images; `transforms` (each a batched image map) are applied before the features.
module private Features =
    let sc (v: float) = v.ToScalar()

    let pixels (images: torch.Tensor) =
        images.to_type(torch.ScalarType.Float64).div(sc 255.0).flatten(1L)

    /// W and b of D random Fourier features for inputs of dimension `inputs`, seeded.
    let randomFourier (inputs: int64) (count: int) (bandwidth: float) (g: torch.Generator) =
        let w = torch.randn([| inputs; int64 count |], dtype = torch.ScalarType.Float64, generator = g).div(sc bandwidth)
        let b = torch.rand([| int64 count |], dtype = torch.ScalarType.Float64, generator = g).mul(sc (2.0 * Math.PI))
        fun (v: torch.Tensor) -> v.mm(w).add(b).cos().mul(sc (sqrt (2.0 / float count)))

    /// The images and 0/1 labels of two classes of a split, `perClass` of each.
    let twoClasses (set: ImageDataset) (first: int) (second: int) (perClass: int) =
        let pick (c: int) =
            let index = set.Labels.eq(int64 c |> fun v -> v.ToScalar()).nonzero().view(-1L)
            index.narrow(0L, 0L, min (int64 perClass) index.shape[0])
        let index = torch.cat([| pick first; pick second |], 0L)
        set.InMemory("the theory demos").Images.index_select(0L, index), set.Labels.index_select(0L, index).eq((int64 second).ToScalar()).to_type(torch.ScalarType.Float64)

/// Dao et al. (ICML 2019): training a kernel classifier on augmented data is, to first order,
/// training on the transformations' averaged features, and to second order adds a data-dependent
/// variance regulariser. Logistic regression on random Fourier features of two CIFAR-10 classes;
/// the Markov chain's transformations are a flip, rotations and shifts. Each objective is trained
/// by full-batch gradient descent from the same start; over training, how close the
/// approximations come to the exact augmented model, in its objective and its test predictions.
module Kernel =
    open Features

    type Setting =
        { FirstClass: int
          SecondClass: int
          TrainPerClass: int
          TestPerClass: int
          Features: int
          Bandwidth: float
          Steps: int
          LearningRate: float
          /// L2 penalty of every objective.
          Penalty: float
          Seed: int64 }

    /// The defaults of examples/theory/kernel.fsx (airplane vs automobile of CIFAR-10).
    let defaults =
        { FirstClass = 0; SecondClass = 1; TrainPerClass = 200; TestPerClass = 100; Features = 1024; Bandwidth = 10.0
          Steps = 400; LearningRate = 10.0; Penalty = 1e-3; Seed = 1L }

    /// Each approximation against the exact augmented model at a training step.
    type Point =
        { Step: int
          /// |exact objective at the approximation's weights − at the exact model's|, and the test
          /// predictions that agree with the exact model's: no augmentation, first order, second order.
          ObjectiveGap: float * float * float
          Agreement: float * float * float }

    type Result =
        { Points: Point list
          /// Test accuracy at the end: exact, no augmentation, first order, second order.
          Accuracy: float * float * float * float }

    /// The transformations: identity, horizontal flip, rotations of ±10°, shifts of ±3 pixels.
    let private transforms (images: torch.Tensor) : torch.Tensor list =
        let space = SearchSpace([| OpTable.Get "Rotate"; OpTable.Get "TranslateX"; OpTable.Get "TranslateY" |])
        let n = images.shape[0]
        let apply (op: int64) (value: float) =
            BatchAugment.ApplyValues(images, space, torch.full([| n |], op.ToScalar(), dtype = torch.ScalarType.Int64), torch.full([| n |], value.ToScalar(), dtype = torch.ScalarType.Float32), null)
        [ images; images.flip(3L); apply 0L 10.0; apply 0L -10.0; apply 1L 3.0; apply 1L -3.0; apply 2L 3.0; apply 2L -3.0 ]

    let run (data: DataSplits) (s: Setting) : Result =
        let classes = data.Train.Classes.Count
        if classes < 2 then fail (sprintf "Kernel: the data has %d class; the demo needs two" classes)
        for c in [ s.FirstClass; s.SecondClass ] do
            if c < 0 || c >= classes then fail (sprintf "Kernel: class %d is not one of the data's %d classes" c classes)
        use scope = torch.NewDisposeScope()
        use g = new torch.Generator(uint64 s.Seed)
        let trainImages, y = twoClasses data.Train s.FirstClass s.SecondClass s.TrainPerClass
        let testImages, testY = twoClasses data.Test s.FirstClass s.SecondClass s.TestPerClass
        let phi = randomFourier (trainImages.shape[1] * trainImages.shape[2] * trainImages.shape[3]) s.Features s.Bandwidth g
        let features = torch.stack([| for t in transforms trainImages -> phi (pixels t) |], 1L) // [n, T, D]
        let mean = features.mean([| 1L |])
        let identity = features.select(1L, 0L)
        let testFeatures = phi (pixels testImages)
        let signs = y.mul(sc 2.0).sub(sc 1.0)
        let logistic (z: torch.Tensor) (labels: torch.Tensor) = torch.nn.functional.softplus(z.mul(labels).neg())
        let penalty (w: torch.Tensor) = w.square().sum().mul(sc s.Penalty)
        let exact (w: torch.Tensor) = (logistic (features.matmul(w)) (signs.view(-1L, 1L))).mean().add(penalty w)
        let none (w: torch.Tensor) = logistic (identity.mv(w)) signs |> fun l -> l.mean().add(penalty w)
        let first (w: torch.Tensor) = logistic (mean.mv(w)) signs |> fun l -> l.mean().add(penalty w)
        let second (w: torch.Tensor) =
            let z = mean.mv(w)
            let curvature = torch.sigmoid(z).mul(torch.sigmoid(z.neg()))
            let spread = features.matmul(w).sub(z.view(-1L, 1L)).square().mean([| 1L |])
            logistic z signs |> fun l -> l.add(curvature.mul(spread).mul(sc 0.5)).mean().add(penalty w)
        let objectives = [ exact; none; first; second ]
        let weights = [ for _ in objectives -> torch.zeros([| int64 s.Features |], dtype = torch.ScalarType.Float64).requires_grad_(true) ]
        let predictions (w: torch.Tensor) = testFeatures.mv(w).gt(sc 0.0)
        let points = ResizeArray<Point>()
        let record step =
            use noGrad = torch.no_grad()
            let reference = exact weights[0]
            let gap (w: torch.Tensor) = abs (exact(w).sub(reference).item<float>())
            let agree (w: torch.Tensor) = predictions(w).eq(predictions weights[0]).to_type(torch.ScalarType.Float64).mean().item<float>()
            points.Add
                { Step = step
                  ObjectiveGap = gap weights[1], gap weights[2], gap weights[3]
                  Agreement = agree weights[1], agree weights[2], agree weights[3] }
        for step in 1 .. s.Steps do
            for objective, w in List.zip objectives weights do
                use inner = torch.NewDisposeScope()
                let loss : torch.Tensor = objective w
                loss.backward()
                use noGrad = torch.no_grad()
                let grad = nonNull w.grad
                w.sub_(grad.mul(sc s.LearningRate)) |> ignore
                grad.zero_() |> ignore
            if step = 1 || step % (max 1 (s.Steps / 40)) = 0 || step = s.Steps then record step
        let accuracy (w: torch.Tensor) =
            use noGrad = torch.no_grad()
            predictions(w).to_type(torch.ScalarType.Float64).eq(testY).to_type(torch.ScalarType.Float64).mean().item<float>()
        { Points = List.ofSeq points
          Accuracy = accuracy weights[0], accuracy weights[1], accuracy weights[2], accuracy weights[3] }

/// Wu et al. (ICML 2020), §4: mixup within a class makes a model's predictions vary less when it is
/// retrained. A one-hidden-layer network on the pixels of CIFAR-10, trained `Runs` times on the same
/// images from different initialisations and data orders, with and without same-class mixup
/// (λ ~ Beta(1, 1), the label unchanged); the variance of its test predictions over the runs. The
/// effect needs training well past fitting the training set (few images, many epochs): measured here,
/// 300 images and 120 epochs lower the variance by 16-23% (seeds 1-3), 60 epochs by 11-17%, while
/// 1,000 images and 15 epochs, a model still fitting them, show no reduction (+15%).
module Stability =
    open Features

    type Setting =
        { Train: int
          Test: int
          Hidden: int
          Epochs: int
          Runs: int
          LearningRate: float
          Seed: int64 }

    /// The defaults of examples/theory/mixup-stability.fsx.
    let defaults = { Train = 300; Test = 1000; Hidden = 128; Epochs = 120; Runs = 5; LearningRate = 0.05; Seed = 1L }

    type Result =
        { /// Mean over test images of the variance over runs of the predicted probabilities (summed over classes).
          Variance: float
          MixupVariance: float
          /// Mean test accuracy over the runs.
          Accuracy: float
          MixupAccuracy: float }

    let run (data: DataSplits) (s: Setting) : Result =
        if data.Train.Classes.Count < 2 then fail (sprintf "Stability: the data has %d class; the demo needs at least two" data.Train.Classes.Count)
        if s.Runs < 2 then fail (sprintf "Stability: Runs = %d: a variance over runs needs at least 2" s.Runs)
        use scope = torch.NewDisposeScope()
        let take (set: ImageDataset) (count: int) =
            let struct (subset, _) = Subsets.Split(set, Nullable(int64 count), Nullable())
            pixels (subset.InMemory "the theory demos").Images |> fun p -> p.to_type(torch.ScalarType.Float32), subset.Labels
        let x, y = take data.Train s.Train
        let testX, testY = take data.Test s.Test
        let mean, std = x.mean([| 0L |]), x.std([| 0L |]).add(sc 1e-3)
        let normalise (v: torch.Tensor) = v.sub(mean).div(std)
        let x, testX = normalise x, normalise testX
        let classes = int64 data.Train.Classes.Count
        let train (seed: int64) (mix: bool) =
            use g = new torch.Generator(uint64 seed)
            let inputs = x.shape[1]
            let init (rows: int64) (cols: int64) = torch.randn([| rows; cols |], generator = g).div(sc (sqrt (float rows))).requires_grad_(true)
            let w1, w2 = init inputs (int64 s.Hidden), init (int64 s.Hidden) classes
            let parameters = [ w1; w2 ]
            let forward (v: torch.Tensor) = torch.nn.functional.relu(v.mm(w1)).mm(w2)
            // Partners of the same class: the samples sorted by class, and where each class starts.
            let struct (_, byClass) = y.sort(stable = true)
            let counts = y.bincount(null, classes)
            let starts = counts.cumsum(0L).sub(counts)
            for _ in 1 .. s.Epochs do
                let order = torch.randperm(x.shape[0], generator = g)
                for start in 0L .. 64L .. x.shape[0] - 1L do
                    use step = torch.NewDisposeScope()
                    let batch = order.narrow(0L, start, min 64L (x.shape[0] - start))
                    let labels = y.index_select(0L, batch)
                    let inputs =
                        if not mix then x.index_select(0L, batch)
                        else
                            let u = torch.rand([| batch.shape[0] |], dtype = torch.ScalarType.Float64, generator = g)
                            let within = u.mul(counts.index_select(0L, labels).to_type(torch.ScalarType.Float64)).floor().to_type(torch.ScalarType.Int64)
                            let partners = byClass.index_select(0L, starts.index_select(0L, labels).add(within))
                            let lambda = torch.rand([| batch.shape[0]; 1L |], generator = g)
                            x.index_select(0L, batch).mul(lambda).add(x.index_select(0L, partners).mul(lambda.neg().add(sc 1.0)))
                    let loss = torch.nn.functional.cross_entropy(forward inputs, labels)
                    loss.backward()
                    use noGrad = torch.no_grad()
                    for p in parameters do
                        let grad = nonNull p.grad
                        p.sub_(grad.mul(sc s.LearningRate)) |> ignore
                        grad.zero_() |> ignore
            use noGrad = torch.no_grad()
            let probabilities = torch.softmax(forward testX, 1)
            probabilities.detach(), float (probabilities.argmax(1L).eq(testY).to_type(torch.ScalarType.Float32).mean().item<float32>())
        let measure (mix: bool) =
            let runs = [ for r in 0 .. s.Runs - 1 -> train (s.Seed * 1000L + int64 r) mix ]
            let stacked = torch.stack([| for p, _ in runs -> p |], 0L) // [runs, test, classes]
            stacked.var([| 0L |]).sum([| 1L |]).mean().item<float32>() |> float, runs |> List.averageBy snd
        let variance, accuracy = measure false
        let mixupVariance, mixupAccuracy = measure true
        { Variance = variance; MixupVariance = mixupVariance; Accuracy = accuracy; MixupAccuracy = mixupAccuracy }

/// Each demo's printed numbers and plot.
module Demos =
    open System.IO
    open ScottPlot

    let private save (plot: Plot) (path: string) =
        plot.SavePng(path, 900, 520) |> ignore
        path

    let private bars (title: string) (ylabel: string) (values: (string * float) list) (path: string) =
        use plot = new Plot()
        let palette = Palettes.Category10()
        let items = values |> List.mapi (fun i (_, v) -> Bar(Position = float i, Value = v, FillColor = palette.GetColor i)) |> Array.ofList
        plot.Add.Bars(items) |> ignore
        plot.Axes.Bottom.TickGenerator <- TickGenerators.NumericManual(values |> List.mapi (fun i (label, _) -> Tick(float i, label)) |> Array.ofList)
        plot.Axes.Margins(bottom = 0.0) |> ignore
        plot.Title title
        plot.YLabel ylabel
        save plot path

    /// The linear-model demo: prints each estimator's error and writes linear-model.png; returns its path.
    let linear (s: Linear.Setting) (out: TextWriter) (folder: string) =
        let r = Linear.run s
        let line (label: string) (value: float) = out.WriteLine(sprintf "  %-58s %8.4f" label value)
        out.WriteLine(sprintf "ridge regression, d = %d, training data in a %d-dimensional subspace S, n = %d, noise %g, ridge %g, seed %d"
                          s.Dimension s.Subspace s.Samples s.Noise s.Ridge s.Seed)
        out.WriteLine "test error ||β̂ − β*||²:"
        line "no augmentation" r.NoAugmentation
        line "label-invariant transforms leaving S (x + δ, δ ⊥ β*)" r.OutsideSpan
        line "label-invariant transforms inside S" r.InsideSpan
        line "mixup" r.Mixup
        out.WriteLine(sprintf "mixup shrinks the estimator like a stronger ridge: ||β̂|| %.4f → %.4f; closest ridge penalty %.3g (was %g, %.1f%% apart)"
                          r.Norm r.MixupNorm r.MixupRidge s.Ridge (100.0 * r.MixupRidgeDistance))
        let (helpA, helpB), (hurtA, hurtB) = r.HelpingPair, r.HurtingPair
        out.WriteLine(sprintf "composition T1∘T2 reaching a direction neither gives: %.4f with T1, T2 → %.4f with T1∘T2 too (lower)" helpA helpB)
        out.WriteLine(sprintf "composition T1∘T2 = identity (T2 undoes T1):        %.4f with T1, T2 → %.4f with T1∘T2 too (higher)" hurtA hurtB)
        Directory.CreateDirectory folder |> ignore
        bars "Linear model (Wu et al. 2020): test error of the ridge estimator" "||β̂ − β*||²"
            [ "none", r.NoAugmentation; "outside S", r.OutsideSpan; "inside S", r.InsideSpan; "mixup", r.Mixup
              "T1, T2", helpA; "+ T1∘T2 (new)", helpB; "T1, T2'", hurtA; "+ T1∘T2' (= id)", hurtB ]
            (Path.Combine(folder, "linear-model.png"))

    /// The kernel demo: prints how close the approximations are and writes kernel.png; returns its path.
    let kernel (data: DataSplits) (s: Kernel.Setting) (out: TextWriter) (folder: string) =
        let r = Kernel.run data s
        let classes = data.Train.Classes
        out.WriteLine(sprintf "logistic regression on %d random Fourier features, %s vs %s (%d training, %d test images each); transformations: flip, rotate ±10°, shift ±3 px"
                          s.Features classes[s.FirstClass] classes[s.SecondClass] s.TrainPerClass s.TestPerClass)
        out.WriteLine "step   |exact objective gap|: none  first  second    test agreement with exact: none  first  second"
        for p in r.Points |> List.filter (fun p -> p.Step = 1 || p.Step % (max 1 (s.Steps / 8)) = 0) do
            let (a, b, c), (d, e, f) = p.ObjectiveGap, p.Agreement
            out.WriteLine(sprintf "%5d  %28.5f %6.5f %7.5f  %34.3f %6.3f %7.3f" p.Step a b c d e f)
        let exact, none, first, second = r.Accuracy
        out.WriteLine(sprintf "test accuracy: exact %.3f, no augmentation %.3f, first order %.3f, second order %.3f" exact none first second)
        Directory.CreateDirectory folder |> ignore
        use plot = new Plot()
        let steps = r.Points |> List.map (fun p -> float p.Step) |> Array.ofList
        let palette = Palettes.Category10()
        for i, name, pick in [ 0, "no augmentation", (fun (a, _, _) -> a); 1, "first order", (fun (_, b, _) -> b); 2, "second order", (fun (_, _, c) -> c) ] do
            let values = r.Points |> List.map (fun p -> log10 (max 1e-9 (pick p.ObjectiveGap))) |> Array.ofList
            let line = plot.Add.Scatter(steps, values, palette.GetColor i)
            line.MarkerSize <- 0.0f
            line.LegendText <- name
        plot.Title "Augmentation as a kernel (Dao et al. 2019): distance from the exact augmented objective"
        plot.XLabel "gradient step"
        plot.YLabel "log10 |objective − exact model's|"
        plot.ShowLegend(Alignment.UpperRight) |> ignore
        save plot (Path.Combine(folder, "kernel.png"))

    /// The mixup-stability demo: prints the variance of predictions over retraining and writes mixup-stability.png.
    let stability (data: DataSplits) (s: Stability.Setting) (out: TextWriter) (folder: string) =
        let r = Stability.run data s
        out.WriteLine(sprintf "%d runs of a %d-unit network on %d training images, %d epochs each, tested on %d images" s.Runs s.Hidden s.Train s.Epochs s.Test)
        let change = r.MixupVariance / r.Variance - 1.0
        out.WriteLine(sprintf "variance of the predicted probabilities over runs: %.4f without mixup, %.4f with same-class mixup (%.0f%% %s)"
                          r.Variance r.MixupVariance (100.0 * abs change) (if change <= 0.0 then "lower" else "higher"))
        out.WriteLine(sprintf "mean test accuracy: %.3f without, %.3f with" r.Accuracy r.MixupAccuracy)
        Directory.CreateDirectory folder |> ignore
        bars "Mixup reduces instability (Wu et al. 2020): variance of predictions over retraining" "variance (summed over classes)"
            [ "no mixup", r.Variance; "same-class mixup", r.MixupVariance ] (Path.Combine(folder, "mixup-stability.png"))
