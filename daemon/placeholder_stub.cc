namespace dropq {}
