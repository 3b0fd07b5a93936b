#include "ptx.hpp"

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>

namespace emu {
namespace {

std::string strip_comments(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); i++) {
        if (text[i] == '/' && i + 1 < text.size() && text[i + 1] == '/') {
            while (i < text.size() && text[i] != '\n') i++;
            out += '\n';
        } else if (text[i] == '/' && i + 1 < text.size() && text[i + 1] == '*') {
            std::size_t end = text.find("*/", i + 2);
            i = end == std::string::npos ? text.size() : end + 1;
            out += ' ';
        } else if (text[i] == '"') {
            // Strings (in .file directives) may hold anything; keep them whole.
            std::size_t end = text.find('"', i + 1);
            if (end == std::string::npos) end = text.size() - 1;
            out.append(text, i, end - i + 1);
            i = end;
        } else {
            out += text[i];
        }
    }
    return out;
}

std::vector<std::string> tokenize(const std::string& text) {
    std::vector<std::string> tokens;
    std::size_t i = 0;
    while (i < text.size()) {
        char c = text[i];
        if (isspace((unsigned char)c)) { i++; continue; }
        if (c == '"') {
            std::size_t end = text.find('"', i + 1);
            if (end == std::string::npos) end = text.size() - 1;
            tokens.push_back(text.substr(i, end - i + 1));
            i = end + 1;
            continue;
        }
        if (isalnum((unsigned char)c) || c == '.' || c == '_' || c == '$' || c == '%') {
            std::size_t start = i;
            while (i < text.size() && (isalnum((unsigned char)text[i]) || text[i] == '.' || text[i] == '_' || text[i] == '$' || text[i] == '%')) i++;
            tokens.push_back(text.substr(start, i - start));
            continue;
        }
        tokens.push_back(std::string(1, c));
        i++;
    }
    return tokens;
}

std::size_t type_size(const std::string& type) {
    static const std::map<std::string, std::size_t> sizes = {
        {".b8", 1}, {".u8", 1}, {".s8", 1}, {".b16", 2}, {".u16", 2}, {".s16", 2}, {".f16", 2}, {".bf16", 2},
        {".b32", 4}, {".u32", 4}, {".s32", 4}, {".f32", 4}, {".f16x2", 4}, {".b64", 8}, {".u64", 8}, {".s64", 8}, {".f64", 8},
    };
    auto it = sizes.find(type);
    return it == sizes.end() ? 0 : it->second;
}

bool is_number(const std::string& token) {
    if (token.empty()) return false;
    for (char c : token)
        if (!isdigit((unsigned char)c)) return false;
    return true;
}

// A variable declaration's byte size: `.align 4 .b8 name[128]`, `.v4 .f32 name[2]`, `.u32 name`.
// `i` points after the state space; on return it points after the name and any dimensions.
std::size_t declaration_size(const std::vector<std::string>& t, std::size_t& i, std::string& name) {
    std::size_t element = 0, vector = 1;
    while (i < t.size()) {
        const std::string& token = t[i];
        if (token == ".align" && i + 1 < t.size()) { i += 2; continue; }
        if (token == ".v2") { vector = 2; i++; continue; }
        if (token == ".v4") { vector = 4; i++; continue; }
        if (token == ".v8") { vector = 8; i++; continue; }
        if (token == ".ptr" || token == ".global" || token == ".shared" || token == ".const" || token == ".local") { i++; continue; }
        if (token.size() > 1 && token[0] == '.' && type_size(token) != 0) { element = type_size(token); i++; continue; }
        break;
    }
    if (i >= t.size()) return 0;
    name = t[i++];
    std::size_t count = 1;
    while (i + 2 < t.size() && t[i] == "[") {
        if (t[i + 1] == "]") { count = 0; i += 2; continue; }   // unsized (extern)
        if (!is_number(t[i + 1]) || t[i + 2] != "]") break;
        count *= (std::size_t)strtoull(t[i + 1].c_str(), nullptr, 10);
        i += 3;
    }
    return element * vector * count;
}

}  // namespace

bool parse_ptx(const std::string& text, PtxModule& module, std::string& error) {
    std::vector<std::string> t = tokenize(strip_comments(text));
    std::map<std::string, std::size_t> module_shared;   // module-scope .shared variables by name
    struct Body {
        std::size_t entry;
        std::size_t begin, end;   // token range of the body
    };
    std::vector<Body> bodies;
    bool saw_version = false, saw_target = false;
    int depth = 0;
    for (std::size_t i = 0; i < t.size(); i++) {
        const std::string& token = t[i];
        if (token == "{") { depth++; continue; }
        if (token == "}") { depth--; continue; }
        if (depth != 0) continue;
        if (token == ".version" && i + 1 < t.size()) {
            const std::string& v = t[++i];
            std::size_t dot = v.find('.');
            module.version_major = atoi(v.c_str());
            module.version_minor = dot == std::string::npos ? 0 : atoi(v.c_str() + dot + 1);
            saw_version = true;
        } else if (token == ".target" && i + 1 < t.size()) {
            module.target = t[++i];
            if (module.target.rfind("sm_", 0) == 0) {
                module.target_sm = atoi(module.target.c_str() + 3);
                module.arch_specific = !module.target.empty() && (module.target.back() == 'a' || module.target.back() == 'f');
            }
            saw_target = true;
        } else if (token == ".address_size" && i + 1 < t.size()) {
            module.address_size = atoi(t[++i].c_str());
        } else if (token == ".shared" && (i == 0 || t[i - 1] != ".extern")) {
            std::size_t j = i + 1;
            std::string name;
            std::size_t bytes = declaration_size(t, j, name);
            if (!name.empty()) module_shared[name] = bytes;
            i = j - 1;
        } else if (token == ".entry" && i + 1 < t.size()) {
            PtxEntry entry;
            entry.name = t[++i];
            std::size_t j = i + 1;
            if (j < t.size() && t[j] == "(") {
                j++;
                while (j < t.size() && t[j] != ")") {
                    if (t[j] == ",") { j++; continue; }
                    if (t[j] != ".param") {
                        error = "unexpected '" + t[j] + "' in the parameter list of .entry " + entry.name;
                        return false;
                    }
                    std::size_t start = j;
                    j++;
                    PtxParam param;
                    std::size_t element = 0;
                    std::string name;
                    // The type is the first sized type token; `.b8 name[N]` makes a byte array.
                    std::size_t k = j;
                    while (k < t.size() && t[k] != "," && t[k] != ")") {
                        if (element == 0 && type_size(t[k]) != 0) {
                            element = type_size(t[k]);
                            param.type = t[k];
                        }
                        k++;
                    }
                    std::size_t cursor = j;
                    param.size = declaration_size(t, cursor, name);
                    for (std::size_t m = start; m < k; m++) param.declaration += (m > start ? " " : "") + t[m];
                    if (param.size == 0) {
                        error = "cannot size parameter '" + param.declaration + "' of .entry " + entry.name;
                        return false;
                    }
                    entry.params.push_back(param);
                    j = k;
                }
                j++;
            }
            // Directives such as .maxntid may sit between the parameter list and the body.
            while (j < t.size() && t[j] != "{" && t[j] != ";") j++;
            if (j < t.size() && t[j] == "{") {
                std::size_t begin = j + 1;
                int inner = 1;
                std::size_t k = begin;
                for (; k < t.size() && inner > 0; k++) {
                    if (t[k] == "{") inner++;
                    else if (t[k] == "}") inner--;
                }
                bodies.push_back({module.entries.size(), begin, k - 1});
                i = k - 1;
            } else {
                i = j;
            }
            module.entries.push_back(entry);
        }
    }
    if (!saw_version || !saw_target) {
        error = "no .version and .target directives: the image is not PTX text";
        return false;
    }
    for (const Body& body : bodies) {
        PtxEntry& entry = module.entries[body.entry];
        std::map<std::string, bool> counted;
        for (std::size_t k = body.begin; k < body.end; k++) {
            const std::string& token = t[k];
            for (const char* base : {"bar", "barrier", "shfl", "vote", "match", "redux", "activemask", "call"}) {
                std::size_t length = strlen(base);
                if (token.compare(0, length, base) == 0 && (token.size() == length || token[length] == '.')) entry.synchronizes = true;
            }
            if (t[k] == ".shared" && t[k - 1] != ".extern" && k + 1 < body.end) {
                // A declaration inside the body (`.shared .align 4 .b8 _ZZ...E7scratch[128];`), not an ld/st suffix.
                std::size_t j = k + 1;
                std::string name;
                std::size_t bytes = declaration_size(t, j, name);
                if (!name.empty() && j < t.size() && t[j] == ";") {
                    entry.static_shared += bytes;
                    counted[name] = true;
                    k = j;
                }
                continue;
            }
            auto it = module_shared.find(t[k]);
            if (it != module_shared.end() && !counted[t[k]]) {
                counted[t[k]] = true;
                entry.static_shared += it->second;
            }
        }
    }
    return true;
}

}  // namespace emu
