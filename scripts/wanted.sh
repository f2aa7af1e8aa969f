# Sourced by the scripts that regenerate parts of the book. `wanted NAME` is true when NAME was
# asked for: when the script got no arguments, or when one of them (in the array ONLY) is a
# prefix of NAME.
wanted() {
    [[ ${#ONLY[@]} -eq 0 ]] && return 0
    local prefix
    for prefix in "${ONLY[@]}"; do
        [[ $1 == "$prefix"* ]] && return 0
    done
    return 1
}
