using System.Text;
using NativeMi.Evaluation;
using NativeMi.Tests.Measurement;
using Xunit;

namespace NativeMi.Tests.Evaluation;

/// <summary>
/// The packaged evaluation (data/wordnet-eval, copied beside the tests) and its disjointness from the fine-tuning split
/// (data/wordnet-finetune.txt); and the loader's messages for broken evaluation files.
/// </summary>
public sealed class EvaluationDataTests : IDisposable
{
    private static string DataFile(string name) => Path.Combine(AppContext.BaseDirectory, "data", name);

    private static readonly Lazy<EvaluationSet> Packaged = new(() => EvaluationSet.Load(EvaluationSet.DefaultFolder));

    private readonly TempFolder _folder = new("evaluation-data");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void NoEvaluationTextIsAFineTuningSentence()
    {
        var fineTuning = File.ReadAllLines(DataFile("wordnet-finetune.txt"), Encoding.UTF8).ToHashSet(StringComparer.Ordinal);
        EvaluationSet set = Packaged.Value;
        Assert.NotEmpty(fineTuning);
        Assert.DoesNotContain(set.Examples, e => fineTuning.Contains(e.Sentence));
        Assert.DoesNotContain(set.Glosses, g => fineTuning.Contains(g.Definition));
    }

    [Fact]
    public void TheFineTuningSplitIsTheCorpusWithoutTheHeldOutTextsInOrder()
    {
        string[] corpus = File.ReadAllLines(DataFile("wordnet-examples.txt"), Encoding.UTF8);
        string[] fineTuning = File.ReadAllLines(DataFile("wordnet-finetune.txt"), Encoding.UTF8);
        EvaluationSet set = Packaged.Value;
        Assert.Equal(set.ExcludeHeldOut(corpus), fineTuning);
        // Every held-out example is a corpus sentence, so the split is smaller by at least the number of examples.
        Assert.True(corpus.Length - fineTuning.Length >= set.Examples.Count, $"{corpus.Length} - {fineTuning.Length} < {set.Examples.Count}");
        var corpusLines = corpus.ToHashSet(StringComparer.Ordinal);
        Assert.All(set.Examples, e => Assert.Contains(e.Sentence, corpusLines));
    }

    [Fact]
    public void TheHeldOutListHoldsExactlyTheTextsTheEvaluationEmbeds()
    {
        string[] listed = File.ReadAllLines(Path.Combine(EvaluationSet.DefaultFolder, EvaluationSet.HeldOutFile), Encoding.UTF8);
        Assert.Equal(listed.Length, listed.Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(Packaged.Value.HeldOutTexts.Order(StringComparer.Ordinal), listed);
    }

    [Fact]
    public void ThePackagedPairsAreBalancedPerLemmaAndUseTheirLemma()
    {
        EvaluationSet set = Packaged.Value;
        Assert.NotEmpty(set.Pairs);
        foreach (var lemma in set.Pairs.GroupBy(p => p.Lemma))
            Assert.True(lemma.Count(p => p.SameSynset) == lemma.Count(p => !p.SameSynset), $"{lemma.Key} is not balanced");
        foreach (EvaluationPair pair in set.Pairs)
        {
            string lemma = pair.Lemma[..pair.Lemma.LastIndexOf('-')];
            Assert.Contains(lemma, set.Examples[pair.First].Lemmas);
            Assert.Contains(lemma, set.Examples[pair.Second].Lemmas);
            Assert.NotEqual(set.Examples[pair.First].Sentence, set.Examples[pair.Second].Sentence);
        }
    }

    [Fact]
    public void EveryPackagedExampleSentenceHasOneSynset()
    {
        EvaluationSet set = Packaged.Value;
        Assert.Equal(set.Examples.Count, set.Examples.Select(e => e.Sentence).Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(set.Glosses.Count, set.Examples.Select(e => e.Synset).Distinct().Count());
    }

    [Fact]
    public void ExcludeHeldOutComparesTrimmedLines()
    {
        EvaluationSet set = Packaged.Value;
        string held = set.Examples[0].Sentence;
        Assert.Equal(["kept line"], set.ExcludeHeldOut(["  " + held + " ", "kept line"]));
    }

    private string WriteSet(string glosses, string examples, string pairs)
    {
        string folder = _folder.Combine("set-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, EvaluationSet.GlossesFile), glosses);
        File.WriteAllText(Path.Combine(folder, EvaluationSet.ExamplesFile), examples);
        File.WriteAllText(Path.Combine(folder, EvaluationSet.PairsFile), pairs);
        return folder;
    }

    private const string Glosses = "synset\tlemmas\tdefinition\n00000001-n\tbank\tsloping land\n00000002-n\tbank\ta financial institution\n";
    private const string Examples = "example\tsynset\tlemmas\tsentence\n00000001-n.1\t00000001-n\tbank\tthey pulled the canoe up on the bank\n" +
        "00000001-n.2\t00000001-n\tbank\the sat on the bank of the river\n00000002-n.1\t00000002-n\tbank\the cashed a check at the bank\n";
    private const string Pairs = "pair\tlemma\texample_a\texample_b\tsame_synset\np1\tbank-n\t00000001-n.1\t00000001-n.2\t1\np2\tbank-n\t00000001-n.1\t00000002-n.1\t0\n";

    [Fact]
    public void AHandWrittenSetLoads()
    {
        EvaluationSet set = EvaluationSet.Load(WriteSet(Glosses, Examples, Pairs));
        Assert.Equal(2, set.Glosses.Count);
        Assert.Equal(3, set.Examples.Count);
        Assert.Equal([true, false], set.Pairs.Select(p => p.SameSynset));
        Assert.Equal(1, set.Examples[2].Synset);
        Assert.Equal(3, set.FileSha256.Count);
    }

    [Fact]
    public void AMissingFolderOrFileIsNamedWithWhatWasExpected()
    {
        string missing = _folder.Combine("no-such-folder");
        var e = Assert.Throws<InputException>(() => EvaluationSet.Load(missing));
        Assert.Contains(missing, e.Message, StringComparison.Ordinal);
        Assert.Contains("glosses.tsv", e.Message, StringComparison.Ordinal);

        string folder = WriteSet(Glosses, Examples, Pairs);
        File.Delete(Path.Combine(folder, EvaluationSet.ExamplesFile));
        e = Assert.Throws<InputException>(() => EvaluationSet.Load(folder));
        Assert.Contains(Path.Combine(folder, EvaluationSet.ExamplesFile), e.Message, StringComparison.Ordinal);
        Assert.Contains("not found", e.Message, StringComparison.Ordinal);
        Assert.Contains("example synset lemmas sentence", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("glosses.tsv", "synset\tdefinition\n00000001-n\tsloping land\n", "glosses.tsv:1: expected the header 'synset lemmas definition'")]
    [InlineData("examples.tsv", "example\tsynset\tlemmas\tsentence\n00000001-n.1\t00000001-n\tbank\n", "examples.tsv:2: expected 4 tab-separated fields")]
    [InlineData("examples.tsv", "example\tsynset\tlemmas\tsentence\n00000001-n.1\t00000009-n\tbank\tx y z\n", "examples.tsv:2: example '00000001-n.1' names synset '00000009-n', which is not in glosses.tsv")]
    [InlineData("pairs.tsv", "pair\tlemma\texample_a\texample_b\tsame_synset\np1\tbank-n\t00000001-n.1\t00000007-n.1\t1\n", "pairs.tsv:2: pair 'p1' names example '00000007-n.1'")]
    [InlineData("pairs.tsv", "pair\tlemma\texample_a\texample_b\tsame_synset\np1\tbank-n\t00000001-n.1\t00000002-n.1\t1\n", "pairs.tsv:2: pair 'p1' says same_synset 1, but its examples are of synsets")]
    [InlineData("pairs.tsv", "pair\tlemma\texample_a\texample_b\tsame_synset\np1\tbank-n\t00000001-n.1\t00000002-n.1\tyes\n", "pairs.tsv:2: same_synset must be 1 or 0, got 'yes'")]
    [InlineData("glosses.tsv", "synset\tlemmas\tdefinition\n00000001-n\tbank\tsloping land\n00000002-n\tbank\tfinance\n00000003-n\tbank\tno examples\n", "synset '00000003-n' of glosses.tsv has no example")]
    public void AMalformedFileIsNamedWithItsLine(string file, string content, string expected)
    {
        string folder = WriteSet(Glosses, Examples, Pairs);
        File.WriteAllText(Path.Combine(folder, file), content);
        var e = Assert.Throws<InputException>(() => EvaluationSet.Load(folder));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Contains(folder, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ASubsetKeepsTheFirstGlossesTheirExamplesAndThePairsAmongThem()
    {
        EvaluationSet set = EvaluationSet.Load(WriteSet(Glosses, Examples, Pairs));
        EvaluationSet subset = set.Subset(1);
        Assert.Single(subset.Glosses);
        Assert.Equal(2, subset.Examples.Count);
        EvaluationPair pair = Assert.Single(subset.Pairs);
        Assert.True(pair.SameSynset);
        Assert.Equal((0, 1), (pair.First, pair.Second));
    }
}
