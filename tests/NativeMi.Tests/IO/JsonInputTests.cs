using System.Text;
using NativeMi.IO;
using Xunit;

namespace NativeMi.Tests.IO;

public sealed class JsonInputTests
{
    [Fact]
    public void Invalid_utf8_inside_a_string_names_the_file_line_and_offset()
    {
        byte[] bytes = [.. Encoding.UTF8.GetBytes("{\n  \"model_type\": \"be"), 0xC3, 0x28, .. Encoding.UTF8.GetBytes("rt\"\n}")];
        var e = Assert.Throws<ModelFormatException>(() => JsonInput.Parse("/models/x/config.json", bytes));
        Assert.Equal("/models/x/config.json: line 2: invalid UTF-8 at byte offset 21; expected a UTF-8 JSON file", e.Message);
    }

    [Fact]
    public void Malformed_json_names_the_file_and_line()
    {
        var e = Assert.Throws<ModelFormatException>(() => JsonInput.Parse("/m/tokenizer_config.json", Encoding.UTF8.GetBytes("{\n\"a\": 1,\n\"b\": }")));
        Assert.StartsWith("/m/tokenizer_config.json: line 3: not well-formed JSON:", e.Message);
    }

    [Fact]
    public void A_byte_order_mark_is_accepted()
    {
        using var document = JsonInput.Parse("x.json", (byte[])[0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("{\"vocab_size\": 3}")]);
        Assert.Equal(3, document.RootElement.GetProperty("vocab_size").GetInt32());
    }

    [Fact]
    public void Depth_beyond_the_limit_is_an_input_error()
    {
        string deep = new string('[', 40) + new string(']', 40);
        var e = Assert.Throws<ModelFormatException>(() => JsonInput.Parse("deep.json", Encoding.UTF8.GetBytes(deep), maxDepth: 32));
        Assert.Contains("deep.json: line 1: not well-formed JSON", e.Message);
    }
}
