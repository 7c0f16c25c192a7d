package model

import (
	"fmt"
	"path/filepath"

	"github.com/fedclaims/fedclaims/tokenizer"
)

// LoadWithVocab loads the encoder checkpoint in dir and the vocabulary saved
// beside it (VocabFile), refusing a pair whose sizes differ: every token id the
// vocabulary gives must have an embedding row, and the converse.
func LoadWithVocab(dir string) (*Model, *tokenizer.Vocab, error) {
	m, err := Load(dir)
	if err != nil {
		return nil, nil, err
	}
	vpath := filepath.Join(dir, VocabFile)
	v, err := tokenizer.ReadFile(vpath)
	if err != nil {
		return nil, nil, err
	}
	if n := m.Config().Vocab; v.Len() != n {
		return nil, nil, fmt.Errorf("%s holds %d tokens but the checkpoint's embeddings (%s) have %d rows: the vocabulary does not match the model",
			vpath, v.Len(), filepath.Join(dir, ConfigFile), n)
	}
	return m, v, nil
}
