/**
 * The man page and the shell completions, generated from the same help text the CLI prints
 * (one source): the overview (USAGE) and each command's `--help` (HELP). A command's options and
 * subcommands are read from its usage lines, so a new flag documented in --help is completed
 * and in the man page without touching this file.
 */

export interface CliText {
  usage: string;
  help: Record<string, string>;
  commands: string[];
}

/** Every --flag a command's help names, sorted. */
export function optionsOf(help: string | undefined): string[] {
  return [...new Set([...(help ?? "").matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)].map((m) => m[0]))].sort();
}

/** The subcommands a command's usage lines name (`pilox-mesh registry sign …` → sign). */
export function subcommandsOf(command: string, help: string | undefined): string[] {
  const re = new RegExp(`pilox-mesh ${command.replace(/[-]/g, "\\-")} ([a-z][a-z-]*)`, "g");
  return [...new Set([...(help ?? "").matchAll(re)].map((m) => m[1]!))].filter((s) => s !== "HANDLE" && s !== "URL").sort();
}

/** Text as roff: backslashes escaped, no line read as a request, ASCII hyphens, other characters by code point. */
const roff = (s: string) =>
  s
    .replace(/\\/g, "\\e")
    .replace(/^([.'])/gm, "\\&$1")
    .replace(/-/g, "\\-")
    .replace(/[^\x00-\x7f]/gu, (ch) => `\\[u${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}]`);

export function manPage(t: CliText, version: string): string {
  const out = [
    `.TH PILOX-MESH 1 "" "pilox-mesh ${roff(version)}" "User Commands"`,
    ".SH NAME",
    "pilox-mesh \\- the mesh layer for AI-agent platforms: signed local bus, federation, discovery",
    ".SH SYNOPSIS",
    ".B pilox-mesh",
    "[\\-\\-config PATH] [\\-\\-state\\-dir DIR] COMMAND [options]",
    ".SH DESCRIPTION",
    ".nf",
    roff(t.usage),
    ".fi",
    ".SH COMMANDS",
  ];
  for (const c of t.commands) {
    const h = t.help[c];
    if (!h) continue;
    out.push(`.SS ${roff(c)}`, ".nf", roff(h), ".fi");
  }
  out.push(".SH FILES", ".TP", "/etc/pilox\\-mesh/pilox\\-mesh.toml, /etc/pilox\\-mesh/conf.d/*.toml", "The configuration; every key in /usr/share/doc/pilox\\-mesh/configuration.md.");
  out.push(".SH SEE ALSO", "/usr/share/doc/pilox\\-mesh/operator\\-guide.md");
  return out.join("\n") + "\n";
}

export function completion(shell: string, t: CliText): string {
  const cmds = t.commands.join(" ");
  const per = t.commands.map((c) => ({ c, subs: subcommandsOf(c, t.help[c]), opts: [...optionsOf(t.help[c]), "--config", "--state-dir", "--help"].filter((v, i, a) => a.indexOf(v) === i) }));
  if (shell === "bash") {
    const cases = per.map(({ c, subs, opts }) => `    ${c}) words="${[...subs, ...opts].join(" ")}" ;;`).join("\n");
    return `# bash completion for pilox-mesh (generated from its --help: pilox-mesh completion bash)
_pilox_mesh() {
  local cur cmd words i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      --config|--state-dir) ((i++)) ;;
      -*) ;;
      *) cmd="\${COMP_WORDS[i]}"; break ;;
    esac
  done
  case "\${COMP_WORDS[COMP_CWORD-1]}" in
    --config|--state-dir|--key-file|--out|--socket|--token-file|--secret-file|--pubkey|--binary) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  if [ -z "$cmd" ]; then
    COMPREPLY=($(compgen -W "${cmds} --config --state-dir --help --version" -- "$cur"))
    return
  fi
  case "$cmd" in
${cases}
    *) words="" ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _pilox_mesh pilox-mesh
`;
  }
  if (shell === "zsh") {
    const cases = per.map(({ c, subs, opts }) => `    ${c}) compadd -- ${[...subs, ...opts].join(" ")} ;;`).join("\n");
    return `#compdef pilox-mesh
# zsh completion for pilox-mesh (generated from its --help: pilox-mesh completion zsh)
_pilox_mesh() {
  if (( CURRENT == 2 )); then
    compadd -- ${cmds}
    return
  fi
  case "\${words[2]}" in
${cases}
  esac
  _files
}
_pilox_mesh "$@"
`;
  }
  if (shell === "fish") {
    const lines = [`# fish completion for pilox-mesh (generated from its --help: pilox-mesh completion fish)`, `complete -c pilox-mesh -f -n "__fish_use_subcommand" -a "${cmds}"`];
    for (const { c, subs, opts } of per) {
      if (subs.length) lines.push(`complete -c pilox-mesh -f -n "__fish_seen_subcommand_from ${c}" -a "${subs.join(" ")}"`);
      for (const o of opts) lines.push(`complete -c pilox-mesh -n "__fish_seen_subcommand_from ${c}" -l ${o.slice(2)}`);
    }
    return lines.join("\n") + "\n";
  }
  throw new Error(`no completion for ${shell}: bash, zsh or fish`);
}
