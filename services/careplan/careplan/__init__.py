"""careloop careplan: personalised, versioned care plans built from assessed needs."""
