using NativeMi.Compute;
using NativeMi.Information;

namespace NativeMi.Probing;

/// <summary>A mini-batch of whole sentences laid out for the backend.</summary>
internal sealed class PreparedBatch : IDisposable
{
    public required int SentenceCount;
    public required int TargetCount;
    /// <summary>[sentences, d] standardised vectors.</summary>
    public required DeviceBuffer<float> Vectors;
    /// <summary>Per target: row of its sentence within the batch.</summary>
    public required DeviceBuffer<int> SentenceOfTarget;
    /// <summary>Per target: its position index i (clamped to the position table).</summary>
    public required DeviceBuffer<int> PositionOfTarget;
    /// <summary>Per target: its class (the "other" class for tokens unseen in training).</summary>
    public required DeviceBuffer<int> ClassOfTarget;
    /// <summary>Host copies for scoring.</summary>
    public required int[] Members, HostClassOfTarget;
    /// <summary>False when <see cref="Vectors"/> belongs to someone else (a fine-tuning pass's pooled output).</summary>
    public bool OwnsVectors { get; init; } = true;

    public void Dispose()
    {
        if (OwnsVectors) Vectors.Dispose();
        SentenceOfTarget.Dispose();
        PositionOfTarget.Dispose();
        ClassOfTarget.Dispose();
    }
}

/// <summary>Builds <see cref="PreparedBatch"/>es from one split.</summary>
internal sealed class BatchSource(IComputeBackend backend, float[] vectors, IReadOnlyList<int[]> targets, ClassMap classes, int maxPosition)
{
    public int Count => targets.Count;

    /// <summary>
    /// A batch over <paramref name="vectors"/> already on the backend ([sentences, d], not standardised, not owned), with the
    /// targets of each of its sentences: how fine-tuning feeds the pooled output of a training pass to the probe.
    /// </summary>
    public static PreparedBatch OnDevice(IComputeBackend backend, DeviceBuffer<float> vectors, IReadOnlyList<int[]> sentenceTargets, ClassMap classes,
        int maxPosition)
    {
        int total = sentenceTargets.Sum(t => t.Length);
        var sentence = new int[total];
        var position = new int[total];
        var cls = new int[total];
        int t = 0;
        for (int b = 0; b < sentenceTargets.Count; b++)
            for (int i = 0; i < sentenceTargets[b].Length; i++, t++)
            {
                sentence[t] = b;
                position[t] = Math.Min(i, maxPosition - 1);
                cls[t] = classes.ClassOf(sentenceTargets[b][i]);
            }
        return new PreparedBatch
        {
            SentenceCount = sentenceTargets.Count,
            TargetCount = total,
            Vectors = vectors,
            OwnsVectors = false,
            SentenceOfTarget = backend.Upload<int>(sentence),
            PositionOfTarget = backend.Upload<int>(position),
            ClassOfTarget = backend.Upload<int>(cls),
            Members = Enumerable.Range(0, sentenceTargets.Count).ToArray(),
            HostClassOfTarget = cls,
        };
    }

    public PreparedBatch Prepare(int[] members)
    {
        int d = vectors.Length / Math.Max(targets.Count, 1);
        var z = new float[members.Length * d];
        int total = 0;
        foreach (int s in members) total += targets[s].Length;
        var sentence = new int[total];
        var position = new int[total];
        var cls = new int[total];
        int t = 0;
        for (int b = 0; b < members.Length; b++)
        {
            int s = members[b];
            vectors.AsSpan(s * d, d).CopyTo(z.AsSpan(b * d, d));
            int[] tokens = targets[s];
            for (int i = 0; i < tokens.Length; i++, t++)
            {
                sentence[t] = b;
                position[t] = Math.Min(i, maxPosition - 1);
                cls[t] = classes.ClassOf(tokens[i]);
            }
        }
        return new PreparedBatch
        {
            SentenceCount = members.Length,
            TargetCount = total,
            Vectors = backend.Upload<float>(z),
            SentenceOfTarget = backend.Upload<int>(sentence),
            PositionOfTarget = backend.Upload<int>(position),
            ClassOfTarget = backend.Upload<int>(cls),
            Members = members,
            HostClassOfTarget = cls,
        };
    }
}

/// <summary>Parameters, optimiser state and scratch of one probe on one backend.</summary>
internal sealed class ProbeNetwork : IDisposable
{
    private sealed class Parameter(string name, DeviceBuffer<float> value, DeviceBuffer<float> gradient, DeviceBuffer<float> m, DeviceBuffer<float> v, long length)
    {
        public string Name => name;
        public DeviceBuffer<float> Value => value;
        public DeviceBuffer<float> Gradient => gradient;
        public DeviceBuffer<float> FirstMoment => m;
        public DeviceBuffer<float> SecondMoment => v;
        public long Length => length;
    }

    private readonly IComputeBackend _backend;
    // The backend's fused forms of the per-batch op sequences, when it has them (the same bits either way).
    private readonly IFusedProbeOps? _fused;
    private readonly ProbeOptions _options;
    private readonly int _width, _classes, _hidden, _positions;
    private readonly List<Parameter> _parameters = [];
    private float[] _hostLoss = [];
    private readonly Dictionary<string, DeviceBuffer<float>> _scratch = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DeviceBuffer<int>> _intScratch = new(StringComparer.Ordinal);
    // The MLP path (positional and bag): W1, b1, P (positional), W2; the linear path (positional and linear): V, Q.
    private readonly Parameter? _w1, _b1, _p, _w2, _v, _q;
    private readonly Parameter _b2;

    public ProbeNetwork(IComputeBackend backend, ProbeOptions options, int width, int classes, int positions, float[] initialOutputBias)
    {
        if (initialOutputBias.Length != classes) throw new ArgumentException($"{initialOutputBias.Length} initial output biases for {classes} classes", nameof(initialOutputBias));
        _backend = backend;
        _fused = backend as IFusedProbeOps;
        _options = options;
        _width = width;
        _classes = classes;
        _positions = positions;
        _hidden = options.Hidden;
        var random = new SplitMix64(options.Seed);
        // Every output weight starts at zero and b2 at the training unigram's log probabilities: the untrained probe
        // is exactly the unigram. In the MLP the random position table (or W1, for the bag) breaks the symmetry of
        // the hidden units: W2's first gradient is gelu(P[i] + b1)ᵀ · g, then W1 learns through W2.
        switch (options.Family)
        {
            case ProbeFamily.Positional:
                _v = Add("V", (long)width * classes, random, 0);
                _q = Add("Q", (long)positions * classes, random, 0);
                _w1 = Add("W1", (long)width * _hidden, random, 0);
                _b1 = Add("b1", _hidden, random, 0);
                _p = Add("P", (long)positions * _hidden, random, 1 / Math.Sqrt(width));
                _w2 = Add("W2", (long)_hidden * classes, random, 0);
                break;
            case ProbeFamily.Linear:
                _v = Add("W", (long)width * classes, random, 0);
                _q = Add("P", (long)positions * classes, random, 0);
                break;
            case ProbeFamily.Bag:
                _w1 = Add("W1", (long)width * _hidden, random, 1 / Math.Sqrt(width));
                _b1 = Add("b1", _hidden, random, 0);
                _w2 = Add("W2", (long)_hidden * classes, random, 0);
                break;
        }
        _b2 = Add("b2", initialOutputBias);
        MlpActive = options.Family == ProbeFamily.Bag;
    }

    public ProbeFamily Family => _options.Family;
    public int Classes => _classes;

    /// <summary>
    /// Whether the positional probe's MLP path takes part. Its first training stage runs without it (the linear path
    /// alone, W2 still zero), so the second stage starts from the trained linear probe.
    /// </summary>
    public bool MlpActive
    {
        get => _mlpActive;
        set => _mlpActive = value && _w1 is not null;
    }

    private bool _mlpActive;

    private Parameter Add(string name, long length, SplitMix64 random, double std)
    {
        var init = new float[length];
        if (std > 0) for (long i = 0; i < length; i++) init[i] = (float)(std * Normal(random));
        return Add(name, init);
    }

    private Parameter Add(string name, float[] init)
    {
        long length = init.Length;
        var p = new Parameter(name, _backend.Upload<float>(init), _backend.Allocate<float>(length), _backend.Allocate<float>(length), _backend.Allocate<float>(length), length);
        _parameters.Add(p);
        return p;
    }

    private static double Normal(SplitMix64 random)
    {
        double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    private DeviceBuffer<float> Scratch(string key, long length)
    {
        if (_scratch.TryGetValue(key, out var buffer) && buffer.Length >= length) return buffer;
        buffer?.Dispose();
        return _scratch[key] = _backend.Allocate<float>(Math.Max(length, 1));
    }

    private DeviceBuffer<int> IntScratch(string key, long length)
    {
        if (_intScratch.TryGetValue(key, out var buffer) && buffer.Length >= length) return buffer;
        buffer?.Dispose();
        return _intScratch[key] = _backend.Allocate<int>(Math.Max(length, 1));
    }

    /// <summary>Logits [targets, classes] for the batch (for the bag probe, each target gets its sentence's row).</summary>
    private DeviceBuffer<float> Forward(PreparedBatch batch)
    {
        int s = batch.SentenceCount, t = batch.TargetCount, d = _width, h = _hidden, c = _classes;
        var logits = Scratch("logits", (long)t * c);
        if (Family == ProbeFamily.Bag)
        {
            var u = Scratch("U", (long)s * h);
            _backend.GemmEx(batch.Vectors, false, _w1!.Value, false, u, s, d, h, accumulate: false);
            var a = Scratch("A", (long)s * h);
            _backend.BiasActivation(u, _b1!.Value, u, a, s, h, gelu: true);
            var sentenceLogits = Scratch("Ls", (long)s * c);
            _backend.GemmEx(a, false, _w2!.Value, false, sentenceLogits, s, h, c, accumulate: false);
            _backend.BiasActivation(sentenceLogits, _b2.Value, sentenceLogits, sentenceLogits, s, c, gelu: false);
            _backend.GatherRows(sentenceLogits, batch.SentenceOfTarget, logits, t, c);
            return logits;
        }
        bool mlp = MlpActive;
        if (mlp)
        {
            var hs = Scratch("H", (long)s * h);
            _backend.GemmEx(batch.Vectors, false, _w1!.Value, false, hs, s, d, h, accumulate: false);
            var u = Scratch("U", (long)t * h);
            var a = Scratch("A", (long)t * h);
            if (_fused is not null) _fused.GatherSum(hs, batch.SentenceOfTarget, _p!.Value, batch.PositionOfTarget, _b1!.Value, u, a, t, h, accumulate: false);
            else
            {
                var pos = Scratch("Prow", (long)t * h);
                _backend.GatherRows(hs, batch.SentenceOfTarget, u, t, h);
                _backend.GatherRows(_p!.Value, batch.PositionOfTarget, pos, t, h);
                _backend.AddInPlace(u, pos, (long)t * h);
                _backend.BiasActivation(u, _b1!.Value, u, a, t, h, gelu: true);
            }
            _backend.GemmEx(a, false, _w2!.Value, false, logits, t, h, c, accumulate: false);
        }
        // The linear path: V z once per sentence, gathered to its targets, plus the position row Q[i].
        var vz = Scratch("VZ", (long)s * c);
        _backend.GemmEx(batch.Vectors, false, _v!.Value, false, vz, s, d, c, accumulate: false);
        if (_fused is not null)
        {
            _fused.GatherSum(vz, batch.SentenceOfTarget, _q!.Value, batch.PositionOfTarget, _b2.Value, logits, null, t, c, accumulate: mlp);
            return logits;
        }
        var row = Scratch("Lrow", (long)t * c);
        _backend.GatherRows(vz, batch.SentenceOfTarget, mlp ? row : logits, t, c);
        if (mlp) _backend.AddInPlace(logits, row, (long)t * c);
        _backend.GatherRows(_q!.Value, batch.PositionOfTarget, row, t, c);
        _backend.AddInPlace(logits, row, (long)t * c);
        _backend.BiasActivation(logits, _b2.Value, logits, logits, t, c, gelu: false);
        return logits;
    }

    /// <summary>
    /// One AdamW step on the batch; returns the summed loss in nats. With <paramref name="inputGradient"/> ([sentences,
    /// width]) it also receives d(mean loss)/d(sentence vectors) at the parameters before the step, which is what
    /// fine-tuning passes back into the model.
    /// </summary>
    public double TrainStep(PreparedBatch batch, int step, DeviceBuffer<float>? inputGradient = null)
    {
        int s = batch.SentenceCount, t = batch.TargetCount, d = _width, h = _hidden, c = _classes;
        var logits = Forward(batch);
        var loss = Scratch("loss", t);
        var argmax = IntScratch("argmax", t);
        _backend.SoftmaxCrossEntropy(logits, batch.ClassOfTarget, loss, argmax, t, c, 1f / t, writeGradient: true);
        var g = logits; // now the gradient w.r.t. the logits
        // Only the position tables' gradients are accumulated (ScatterAddRows); every other parameter gradient is written
        // whole by a GEMM or ColumnSums below, so zeroing it first would only cost a pass over it (W2's and V's are
        // the size of the output layer). A frozen path's gradients are neither written nor read.
        // (ReduceRows zeroes the tables it fills itself.)
        if (_fused is null && _q is not null) _backend.Zero(_q.Gradient, _q.Length);
        if (_fused is null && _p is not null && MlpActive) _backend.Zero(_p.Gradient, _p.Length);
        if (Family == ProbeFamily.Bag)
        {
            var gs = Scratch("dLs", (long)s * c);
            _backend.Zero(gs, (long)s * c);
            _backend.ScatterAddRows(g, batch.SentenceOfTarget, gs, t, c);
            var a = Scratch("A", (long)s * h);
            _backend.GemmEx(a, true, gs, false, _w2!.Gradient, h, s, c, accumulate: false);
            _backend.ColumnSums(gs, _b2.Gradient, s, c);
            var da = Scratch("dA", (long)s * h);
            _backend.GemmEx(gs, false, _w2.Value, true, da, s, c, h, accumulate: false);
            var u = Scratch("U", (long)s * h);
            _backend.GeluBackward(u, da, da, (long)s * h);
            _backend.ColumnSums(da, _b1!.Gradient, s, h);
            _backend.GemmEx(batch.Vectors, true, da, false, _w1!.Gradient, d, s, h, accumulate: false);
            if (inputGradient is not null) _backend.GemmEx(da, false, _w1.Value, true, inputGradient, s, h, d, accumulate: false);
        }
        else
        {
            var gs = Scratch("dVZ", (long)s * c);
            if (_fused is not null) _fused.ReduceRows(g, _b2.Gradient, batch.SentenceOfTarget, gs, s, batch.PositionOfTarget, _q!.Gradient, _positions, t, c);
            else
            {
                _backend.ColumnSums(g, _b2.Gradient, t, c);
                _backend.Zero(gs, (long)s * c);
                _backend.ScatterAddRows(g, batch.SentenceOfTarget, gs, t, c);
                _backend.ScatterAddRows(g, batch.PositionOfTarget, _q!.Gradient, t, c);
            }
            _backend.GemmEx(batch.Vectors, true, gs, false, _v!.Gradient, d, s, c, accumulate: false);
            if (inputGradient is not null) _backend.GemmEx(gs, false, _v.Value, true, inputGradient, s, c, d, accumulate: false);
            if (MlpActive)
            {
                var a = Scratch("A", (long)t * h);
                _backend.GemmEx(a, true, g, false, _w2!.Gradient, h, t, c, accumulate: false);
                var da = Scratch("dA", (long)t * h);
                _backend.GemmEx(g, false, _w2.Value, true, da, t, c, h, accumulate: false);
                var u = Scratch("U", (long)t * h);
                _backend.GeluBackward(u, da, da, (long)t * h);
                var dh = Scratch("dH", (long)s * h);
                if (_fused is not null) _fused.ReduceRows(da, _b1!.Gradient, batch.SentenceOfTarget, dh, s, batch.PositionOfTarget, _p!.Gradient, _positions, t, h);
                else
                {
                    _backend.ScatterAddRows(da, batch.PositionOfTarget, _p!.Gradient, t, h);
                    _backend.ColumnSums(da, _b1!.Gradient, t, h);
                    _backend.Zero(dh, (long)s * h);
                    _backend.ScatterAddRows(da, batch.SentenceOfTarget, dh, t, h);
                }
                _backend.GemmEx(batch.Vectors, true, dh, false, _w1!.Gradient, d, s, h, accumulate: false);
                if (inputGradient is not null) _backend.GemmEx(dh, false, _w1.Value, true, inputGradient, s, h, d, accumulate: true);
            }
        }
        var hyper = new AdamWStep(_options.LearningRate * (MlpActive && Family == ProbeFamily.Positional ? _options.SecondStageLearningRateScale : 1f), 0.9f, 0.999f, 1e-8f, _options.WeightDecay, step);
        foreach (var p in _parameters)
        {
            // A frozen path keeps its parameters (and its zero output weights) untouched, weight decay included.
            if (!MlpActive && IsMlpParameter(p)) continue;
            _backend.AdamW(p.Value, p.Gradient, p.FirstMoment, p.SecondMoment, p.Length, hyper);
        }
        // One host array for the losses, grown when a batch has more targets, instead of one per step.
        if (_hostLoss.Length < t) _hostLoss = new float[t];
        Span<float> host = _hostLoss.AsSpan(0, t);
        _backend.Download(loss, host);
        double sum = 0;
        foreach (float v in host) sum += v;
        return sum;
    }

    private bool IsMlpParameter(Parameter p) => ReferenceEquals(p, _w1) || ReferenceEquals(p, _b1) || ReferenceEquals(p, _p) || ReferenceEquals(p, _w2);

    /// <summary>Per target: loss in nats of its class (the "other" class for unseen tokens) and the argmax class.</summary>
    public (float[] LossNats, int[] Argmax) Score(PreparedBatch batch)
    {
        int t = batch.TargetCount;
        var logits = Forward(batch);
        var loss = Scratch("loss", t);
        var argmax = IntScratch("argmax", t);
        _backend.SoftmaxCrossEntropy(logits, batch.ClassOfTarget, loss, argmax, t, _classes, 1f, writeGradient: false);
        var hostLoss = new float[t];
        var hostArgmax = new int[t];
        _backend.Download(loss, hostLoss);
        _backend.Download(argmax, hostArgmax);
        return (hostLoss, hostArgmax);
    }

    /// <summary>Per sentence of the batch, its logits row (bag probe scoring needs the whole ranking).</summary>
    public float[] SentenceLogits(PreparedBatch batch)
    {
        Forward(batch);
        var host = new float[(long)batch.SentenceCount * _classes];
        _backend.Download(Scratch("Ls", host.Length), host);
        return host;
    }

    public double MeanCrossEntropyBits(BatchSource source, int batchSentences)
    {
        double sum = 0;
        long count = 0;
        for (int start = 0; start < source.Count; start += batchSentences)
        {
            int[] members = Enumerable.Range(start, Math.Min(batchSentences, source.Count - start)).ToArray();
            using var batch = source.Prepare(members);
            var (loss, _) = Score(batch);
            foreach (float v in loss) sum += v;
            count += loss.Length;
        }
        return sum / count / Math.Log(2);
    }

    public float[][] Snapshot() => _parameters.Select(p =>
    {
        var host = new float[p.Length];
        _backend.Download(p.Value, host);
        return host;
    }).ToArray();

    /// <summary>
    /// <see cref="Snapshot"/> into the arrays an earlier snapshot returned: keeping the best parameters after every improving
    /// epoch then allocates nothing, where a new snapshot per epoch left megabytes of large-object garbage each time.
    /// </summary>
    public void SnapshotInto(float[][] destination)
    {
        for (int i = 0; i < _parameters.Count; i++) _backend.Download(_parameters[i].Value, destination[i].AsSpan(0, checked((int)_parameters[i].Length)));
    }

    public void Restore(float[][] values)
    {
        for (int i = 0; i < _parameters.Count; i++) _backend.CopyFromHost<float>(values[i], _parameters[i].Value);
    }

    /// <summary>Every parameter with its AdamW moments (a checkpoint), in a fixed order.</summary>
    public (string Name, float[] Value, float[] FirstMoment, float[] SecondMoment)[] State() => _parameters.Select(p =>
    {
        float[] value = new float[p.Length], m = new float[p.Length], v = new float[p.Length];
        _backend.Download(p.Value, value);
        _backend.Download(p.FirstMoment, m);
        _backend.Download(p.SecondMoment, v);
        return (p.Name, value, m, v);
    }).ToArray();

    /// <summary>Puts back what <see cref="State"/> returned (the same probe shape).</summary>
    public void RestoreState(IReadOnlyList<(string Name, float[] Value, float[] FirstMoment, float[] SecondMoment)> state)
    {
        if (state.Count != _parameters.Count) throw new ArgumentException($"the state holds {state.Count} parameters; the probe has {_parameters.Count}", nameof(state));
        for (int i = 0; i < _parameters.Count; i++)
        {
            Parameter p = _parameters[i];
            if (state[i].Name != p.Name || state[i].Value.Length != p.Length)
                throw new ArgumentException($"state entry {i} is {state[i].Name} of {state[i].Value.Length}; the probe's is {p.Name} of {p.Length}", nameof(state));
            _backend.CopyFromHost<float>(state[i].Value, p.Value);
            _backend.CopyFromHost<float>(state[i].FirstMoment, p.FirstMoment);
            _backend.CopyFromHost<float>(state[i].SecondMoment, p.SecondMoment);
        }
    }

    public void Dispose()
    {
        foreach (var p in _parameters) { p.Value.Dispose(); p.Gradient.Dispose(); p.FirstMoment.Dispose(); p.SecondMoment.Dispose(); }
        foreach (var b in _scratch.Values) b.Dispose();
        foreach (var b in _intScratch.Values) b.Dispose();
    }
}
