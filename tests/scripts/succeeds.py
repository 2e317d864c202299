"""A script that works: prints its argv, its __name__ and whether its folder is on sys.path."""

import os
import pickle
import sys

import helper_module

print("argv:", sys.argv[1:])
print("name:", __name__)
print("path0:", os.path.samefile(sys.path[0], os.path.dirname(os.path.abspath(__file__))))
print("helper:", helper_module.VALUE)


class Point:  # classes defined in __main__ pickle as they do under python
    x = 1


print("pickled:", pickle.loads(pickle.dumps(Point())).x)
sys.stderr.write("to stderr\n")
