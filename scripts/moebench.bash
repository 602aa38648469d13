# bash completion for moebench (installed by `make install` as
# PREFIX/share/bash-completion/completions/moebench).
#
# Asks the program itself, so it follows the commands and options of the
# binary being completed: the command list from `moebench --help`, a
# command's options from the --long-options its --help mentions. Suites
# complete to .lua files, databases to .db files; the rest to file names.
_moebench() {
    local cur prev bin words
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    bin=${COMP_WORDS[0]}
    if [ "$COMP_CWORD" -eq 1 ] || { [ "$COMP_CWORD" -eq 2 ] && [ "$prev" = help ]; }; then
        words=$("$bin" --help 2>/dev/null |
            awk '/^commands:/ {f = 1; next} f && /^  [a-z]/ {print $1} f && /^$/ {exit}')
        [ "$COMP_CWORD" -eq 1 ] && words="$words help --help --version"
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
        return
    fi
    case $prev in
        --db|--baseline-db|-o|--out)
            COMPREPLY=($(compgen -f -X '!*.db' -- "$cur") $(compgen -d -- "$cur"))
            return ;;
        --slurm-resume|--slurm-status|--slurm-dir)
            COMPREPLY=($(compgen -d -- "$cur"))
            return ;;
    esac
    if [[ $cur == -* ]]; then
        words=$("$bin" "${COMP_WORDS[1]}" --help 2>/dev/null |
            grep -o -e '--[a-z][a-z0-9-]*' | sort -u)
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    elif [ "${COMP_WORDS[1]}" = run ]; then
        COMPREPLY=($(compgen -f -X '!*.lua' -- "$cur") $(compgen -d -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -o filenames -F _moebench moebench
