//! Treefiles: rpm-ostree compatible YAML/JSON with includes, conditionals and variables.
